package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// TestExpiringToken: a token that expires within 60 s is refreshed when it
// can be; otherwise it is used while it still works, and only an expired
// one that cannot be refreshed fails.
func TestExpiringToken(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	soon := time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	withOAuth := &config.Service{Name: "gh", Auth: config.ServiceAuth{Type: config.AuthLinked},
		OAuth2: &config.OAuth2{TokenURL: down.URL, ClientID: "c"}}
	noOAuth := &config.Service{Name: "gh", Auth: config.ServiceAuth{Type: config.AuthLinked}}
	for _, tc := range []struct {
		name    string
		svc     *config.Service
		fields  map[string]string
		want    string
		wantErr error
	}{
		{"expiring, no oauth2: used", noOAuth, map[string]string{"access_token": "t1", "expires_at": soon}, "t1", nil},
		{"expiring, no refresh token: used", withOAuth, map[string]string{"access_token": "t2", "expires_at": soon}, "t2", nil},
		{"expiring, token endpoint down: used", withOAuth, map[string]string{"access_token": "t3", "refresh_token": "r", "expires_at": soon}, "t3", nil},
		{"expired, token endpoint down: fails", withOAuth, map[string]string{"access_token": "t4", "refresh_token": "r", "expires_at": past}, "", auth.ErrRefresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := inmem.New(map[string]map[string]string{"users/" + user + "/gh": tc.fields})
			p := auth.New(store, time.Minute)
			cred, err := p.Get(context.Background(), tc.svc, &gateway.Turn{UserID: user})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || cred.Token.Reveal() != tc.want {
				t.Fatalf("Get = %v, %v; want token %s", cred, err, tc.want)
			}
			e, _ := store.Read(context.Background(), "users/"+user+"/gh")
			if e.Data["refresh_lock_until"] != "" {
				t.Fatal("a refresh lock was left behind")
			}
		})
	}
}
