package hbone

import (
	"crypto/tls"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/proxy/certs"
)

// TestServerAdvertisesZtunnelSettings reads the server's first frames with
// a raw Framer: its SETTINGS and the connection window it opens.
func TestServerAdvertisesZtunnelSettings(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.40", echo, nil)
	conf := m.source(t, clientID).ClientTLSConfig(certs.PeerExpectation{ID: serverID})
	c, err := tls.Dial("tcp", addr.String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	settings := map[http2.SettingID]uint32{}
	var connWindow uint32 = 65535
	for sawSettings, sawWindow := false, false; !sawSettings || !sawWindow; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error { settings[s.ID] = s.Val; return nil })
				sawSettings = true
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow += f.Increment
				sawWindow = true
			}
		}
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 100,
		http2.SettingInitialWindowSize:    4 << 20,
	}
	for id, v := range want {
		if settings[id] != v {
			t.Errorf("%v = %d, want %d", id, settings[id], v)
		}
	}
	if connWindow != 16<<20 {
		t.Errorf("connection window %d, want %d", connWindow, 16<<20)
	}
}
