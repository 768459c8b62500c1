package rbac

import (
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// Decider is what both RBAC filters run: the enforced rules and the shadow
// rules (evaluated for their counters only), each optional, with every
// decision counted. Read-only after NewDecider; Decide does not allocate.
type Decider struct {
	enforced, shadow       *Engine
	enforcedCnt, shadowCnt engineCounters
}

// engineCounters are an engine's counters resolved at config time: one
// per policy for a match, one for no match.
type engineCounters struct {
	matched []prometheus.Counter
	none    prometheus.Counter
}

// decisionCounters returns the decision counters of a filter kind ("http"
// or "tcp") by result, registered on scope. Envoy names its RBAC
// statistics <stat_prefix>rbac.allowed, denied, shadow_allowed and
// shadow_denied; here they are envoy_<kind>_rbac_<result>, labelled with
// the rules' stat prefix and the policy that decided ("none" when no
// policy matched). Registered once per scope's registry: a filter rebuilt
// by a reload counts on the same series.
func decisionCounters(scope filters.Scope, kind string) (map[string]*prometheus.CounterVec, error) {
	vecs := make(map[string]*prometheus.CounterVec, 4)
	for _, r := range []string{"allowed", "denied", "shadow_allowed", "shadow_denied"} {
		v, err := scope.CounterVec(prometheus.CounterOpts{
			Name: "envoy_" + kind + "_rbac_" + r,
			Help: "RBAC decisions (" + r + ") of the " + kind + " RBAC filters, by rules stat prefix and deciding policy.",
		}, "prefix", "policy")
		if err != nil {
			return nil, err
		}
		vecs[r] = v
	}
	return vecs, nil
}

// NewDecider compiles rules and shadow (either may be nil: no enforcement,
// no shadow evaluation). kind is "http" or "tcp"; the prefixes label the
// counters, which are registered on scope. Errors name the field,
// relative to the filter's config.
func NewDecider(scope filters.Scope, kind string, rules, shadow *rbacv3.RBAC, rulesPrefix, shadowPrefix string) (*Decider, error) {
	d := &Decider{}
	var err error
	if rules != nil {
		if d.enforced, err = Compile(rules); err != nil {
			return nil, pbcheck.At("rules", err)
		}
	}
	if shadow != nil {
		if d.shadow, err = Compile(shadow); err != nil {
			return nil, pbcheck.At("shadow_rules", err)
		}
	}
	if rules == nil && shadow == nil {
		return d, nil
	}
	vecs, err := decisionCounters(scope, kind)
	if err != nil {
		return nil, err
	}
	if d.enforced != nil {
		d.enforcedCnt = counters(d.enforced, vecs, "", rulesPrefix)
	}
	if d.shadow != nil {
		d.shadowCnt = counters(d.shadow, vecs, "shadow_", shadowPrefix)
	}
	return d, nil
}

// counters resolves an engine's counters: a match counts as what the
// action makes of it, no match likewise.
func counters(e *Engine, vecs map[string]*prometheus.CounterVec, pre, prefix string) engineCounters {
	matchedAs, noneAs := "allowed", "denied"
	switch e.action {
	case Deny:
		matchedAs, noneAs = "denied", "allowed"
	case Log:
		noneAs = "allowed"
	}
	var c engineCounters
	for i := range e.policies {
		c.matched = append(c.matched, vecs[pre+matchedAs].WithLabelValues(prefix, e.policies[i].Name))
	}
	c.none = vecs[pre+noneAs].WithLabelValues(prefix, "none")
	return c
}

// Decide evaluates the shadow rules (counted only) and the enforced
// rules. It returns whether the request or connection may go on and, when
// not, Envoy's response code details naming the deciding policy.
func (d *Decider) Decide(in *Input) (allowed bool, details string) {
	allowed, details, _ = d.DecideShadow(in)
	return allowed, details
}

// DecideShadow is Decide, also returning the shadow rules' result (Index
// -1 and Allowed true when there are no shadow rules), which the HTTP
// filter records in the stream's dynamic metadata.
func (d *Decider) DecideShadow(in *Input) (allowed bool, details string, shadow Result) {
	shadow = Result{Allowed: true, Index: -1}
	if d.shadow != nil {
		shadow = d.shadow.Evaluate(in)
		count(&d.shadowCnt, shadow)
	}
	if d.enforced == nil {
		return true, "", shadow
	}
	r := d.enforced.Evaluate(in)
	count(&d.enforcedCnt, r)
	if r.Allowed {
		return true, "", shadow
	}
	if r.Policy != nil {
		return false, r.Policy.Details, shadow
	}
	return false, NoDetails, shadow
}

func count(c *engineCounters, r Result) {
	if r.Index >= 0 {
		c.matched[r.Index].Inc()
		return
	}
	c.none.Inc()
}

// Enforced and Shadow return the compiled engines (nil when absent).
func (d *Decider) Enforced() *Engine { return d.enforced }
func (d *Decider) Shadow() *Engine   { return d.shadow }
