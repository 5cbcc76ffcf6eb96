package server

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/voicegw/voicegw/templates"
)

func TestClientIPFunc(t *testing.T) {
	var nets []*net.IPNet
	for _, c := range []string{"10.0.0.0/8", "2001:db8:ffff::/48"} {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	if ClientIPFunc(nil) != nil {
		t.Fatal("no trusted proxies must mean: believe no header")
	}
	f := ClientIPFunc(nets)
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct client, header ignored", "203.0.113.9:1", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted proxy, one client", "10.1.2.3:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed leftmost entries are skipped", "10.1.2.3:1", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:1", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "10.1.2.3:1", []string{"1.1.1.1", "198.51.100.2, 10.0.0.5"}, "198.51.100.2"},
		{"IPv6 client", "[2001:db8:ffff::1]:1", []string{"2001:db8:1::7"}, "2001:db8:1::7"},
		{"garbage in the header", "10.1.2.3:1", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		{"no header from a proxy", "10.1.2.3:1", nil, "10.1.2.3"},
		// Loopback and private peers are trusted only when listed.
		{"loopback peer not listed", "127.0.0.1:1", []string{"198.51.100.1"}, "127.0.0.1"},
		{"private peer not listed", "192.168.1.1:1", []string{"198.51.100.1"}, "192.168.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/link", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := f(r); got != tc.want {
				t.Fatalf("client = %q, want %q", got, tc.want)
			}
		})
	}
}

// The link handler sees the client address the trusted proxy reported,
// and every answer under /link, even without linking, carries the
// security headers.
func TestLinkRoutes(t *testing.T) {
	_, lb, _ := net.ParseCIDR("10.0.0.0/8")
	var seen []string
	link := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.RemoteAddr)
		w.WriteHeader(http.StatusTeapot)
	})
	s := New(&Runtime{Link: link, ClientIP: ClientIPFunc([]*net.IPNet{lb})}, nil, nil)
	for _, m := range []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		r := httptest.NewRequest(m, "/link/callback", nil)
		r.RemoteAddr = "10.0.0.1:5000"
		r.Header.Set("X-Forwarded-For", "198.51.100.4")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		if rec.Code != http.StatusTeapot {
			t.Errorf("%s /link/callback = %d, want the link handler's answer", m, rec.Code)
		}
	}
	if len(seen) != 7 || seen[0] != "GET /link/callback 198.51.100.4:0" {
		t.Fatalf("the link handler saw %v", seen)
	}

	s = New(&Runtime{}, nil, nil)
	for _, m := range []string{"GET", "HEAD", "PUT"} {
		for _, p := range []string{"/link", "/link/x"} {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(m, p, nil))
			h := rec.Header()
			if rec.Code != http.StatusNotFound || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" ||
				h.Get("Content-Security-Policy") != templates.StrictCSP {
				t.Errorf("%s %s without linking = %d, headers %v", m, p, rec.Code, h)
			}
		}
	}
}
