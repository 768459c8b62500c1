package main

import (
	"net/netip"
	"testing"
)

func TestCountTo(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.40.11:9001")
	if got := procNetAddr(dst); got != "0B28007F:2329" {
		t.Fatalf("procNetAddr = %s, want 0B28007F:2329", got)
	}
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B28007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0B28007F:2329 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0
   2: 0100007F:9C41 0B28007F:2329 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0
   3: 0100007F:9C42 0B28007F:2329 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0
   4: 0100007F:9C43 0B28007F:232A 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0
   5: 0B28007F:2329 0100007F:9C42 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0
`
	if got := countTo([]byte(table), dst); got != 3 {
		t.Errorf("countTo = %d, want 3 (two in TIME_WAIT, one established; not the listener, another port or the server side)", got)
	}
}
