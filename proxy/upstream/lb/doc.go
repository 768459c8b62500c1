// Package lb picks an upstream host for each request and keeps the live
// state that picking depends on: active requests, circuit breakers and
// outlier detection. It implements Envoy's load balancing policies
// (envoy.config.cluster.v3.Cluster.LbPolicy) over the clusters of an
// xds.Snapshot.
//
// # Shape
//
// A [Manager] outlives snapshots. [Manager.Update] turns each cluster of a
// new snapshot into a [ClusterState], reusing the state of the cluster of
// the same name: its [Breakers] (counts kept, thresholds updated in place),
// its round-robin position, and each host's live state, keyed by address,
// so that a reload neither resets a circuit breaker nor forgets which hosts
// were failing. A [Host] is one endpoint as one snapshot describes it
// (address, weight, identity); hosts of successive snapshots with the same
// address share their live state.
//
// Picking reads an immutable host set through an atomic pointer. The set is
// rebuilt, under the cluster's mutex, when a snapshot arrives and when
// outlier detection ejects or returns a host: the data path never waits for
// a rebuild. Round robin, least request with equal weights, random, ring
// hash and Maglev pick without a lock and without allocating; weighted
// least request and weighted round robin over a long cycle hold a mutex
// around one O(log n) heap operation, as Envoy's EDF scheduler does per
// worker.
//
// # Policies
//
//   - ROUND_ROBIN: equal weights rotate; unequal weights follow Envoy's
//     earliest-deadline-first schedule, exact over a cycle of sum(weights)
//     picks (a precomputed table when the cycle is short).
//   - LEAST_REQUEST: equal weights compare choice_count random hosts and
//     take the one with the fewest active requests; unequal weights use EDF
//     with Envoy's dynamic weight weight/(active+1)^active_request_bias,
//     recomputed when a host is picked.
//   - RANDOM: weighted random. Envoy's RANDOM ignores weights; honouring
//     them is the same when they are equal.
//   - RING_HASH: Envoy's ketama ring: each host hashed as "ip:port_i" with
//     xxHash64, minimum_ring_size..maximum_ring_size entries shared by
//     weight; a request hash maps to the first entry at or after it.
//   - MAGLEV: Envoy's weighted Maglev table of table_size entries.
//
// Slow start (slow_start_config, ROUND_ROBIN and LEAST_REQUEST): while a
// host is younger than the window (its age counted from when the cluster
// first had it, so reloads do not restart it), its weight is scaled by
// max(min_weight_percent, (age/window)^(1/aggression)) in Envoy's EDF
// schedule with weights taken at each pick; once every host is past the
// window, the policy picks as without it.
//
// Hash policies pick randomly when the request has no hash. Retries that
// must avoid previous hosts re-pick up to host_selection_retry_max_attempts
// times, as Envoy does ([PickContext]).
//
// # Health
//
// Circuit breakers count connections, pending requests, requests and
// retries; a retry_budget replaces max_retries with a share of the requests
// in flight, at least min_retry_concurrency.
//
// Outlier detection follows Envoy's: consecutive 5xx, consecutive gateway
// failures, consecutive local-origin failures (when
// split_external_local_origin_errors), success rate and failure percentage,
// with ejection times growing with each ejection and max_ejection_percent
// respected. When the share of available hosts falls below the healthy
// panic threshold, the balancer uses all hosts.
//
// Priorities and localities (priority.go): endpoints of several EDS
// priorities share load by Envoy's priority load (each level's healthy
// share times the overprovisioning factor, capped at 100%, the rest
// spilling to the next level), with panic decided per level; under
// locality_weighted_lb_config a level picks a locality by its weight
// scaled by its own health, then a host in it. Ejection is the health
// these read, so an ejected endpoint's level loses its share. A cluster of
// one priority without locality weighting pays nothing for this.
//
// # State of other packages per host
//
// A host's live state is the owner of what other packages keep per
// endpoint ([Attachment], made on first use by [Host.Attach]):
// proxy/upstream hangs each endpoint's HTTP/1.1 and HTTP/2 pools and its
// hold on an HBONE pool key there. When an Update drops the host's
// address or its cluster, when [Manager.Close] runs, or when an
// original-destination host is evicted, the attachment is closed once,
// outside the package's locks, and a Host of that state attaches nothing
// more (Attach returns nil: the caller picks again). So the per-endpoint
// state of the proxy is pruned exactly when the balancer's is, and an
// address that comes back starts afresh.
//
// # Goroutines
//
// The package starts none of its own except the interval timer of each
// cluster with outlier detection: a [Clock] AfterFunc owned by the Manager,
// re-armed by its own callback, stopped when the cluster leaves a snapshot
// and by [Manager.Close], which waits for a callback in flight.
//
// # Written here rather than imported
//
// The EDF heap is hand-written because container/heap boxes every element
// in an interface, which would allocate on each pick. Hashing is not:
// ring hash and Maglev use github.com/cespare/xxhash/v2, whose XXH64 is
// Envoy's HashUtil::xxHash64 bit for bit (seed 0, and seed 1 for Maglev's
// skip; TestEnvoyXXHash64), so hosts land where Envoy puts them.
package lb
