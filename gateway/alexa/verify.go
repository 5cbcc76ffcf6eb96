package alexa

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Header names Alexa signs requests with.
const (
	HeaderCertURL   = "SignatureCertChainUrl"
	HeaderSignature = "Signature-256"
)

// certSAN is the name Alexa's signing certificate must carry in its SANs.
const certSAN = "echo-api.amazon.com"

// fetchTimeout bounds a certificate download (the request's deadline may
// bound it further); failureTTL is how long a
// failed download is not retried.
const (
	fetchTimeout = 3 * time.Second
	failureTTL   = time.Minute
)

// maxCertBytes caps a downloaded certificate chain.
const maxCertBytes = 64 << 10

// ErrVerify marks a request that failed verification.
var ErrVerify = errors.New("request verification failed")

// CertFetcher downloads a certificate chain (PEM) by URL.
type CertFetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// VerifierConfig configures request verification.
type VerifierConfig struct {
	// Tolerance is how far request.timestamp may be from now, either side.
	Tolerance time.Duration
	// Roots are the trusted roots; nil means the system roots.
	Roots *x509.CertPool
	// Fetcher downloads certificate chains; nil means HTTPS with a 3 s
	// timeout and a 64 KiB cap.
	Fetcher CertFetcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks Alexa request signatures and timestamps as Amazon
// specifies for skills hosted outside Lambda. Certificates are cached by
// URL until they expire.
type Verifier struct {
	cfg   VerifierConfig
	mu    sync.Mutex
	cache map[string]*rsa.PublicKey
	until map[string]time.Time
	// failed remembers failed downloads for failureTTL, so that forged
	// URLs cannot make the gateway download again and again.
	failed map[string]time.Time
	group  singleflight.Group
}

// NewVerifier returns a verifier for cfg.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Fetcher == nil {
		cfg.Fetcher = &httpFetcher{client: &http.Client{
			Timeout:       3 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = 150 * time.Second
	}
	return &Verifier{cfg: cfg, cache: map[string]*rsa.PublicKey{}, until: map[string]time.Time{}, failed: map[string]time.Time{}}
}

func verifyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerify, fmt.Sprintf(format, args...))
}

// Signature implements Verifier: the certificate URL rules, the chain, the
// SAN, and the RSA-SHA256 signature of the raw body bytes.
func (v *Verifier) Signature(ctx context.Context, header http.Header, body []byte) error {
	rawURL := header.Get(HeaderCertURL)
	if rawURL == "" {
		return verifyErr("no %s header", HeaderCertURL)
	}
	sigB64 := header.Get(HeaderSignature)
	if sigB64 == "" {
		return verifyErr("no %s header", HeaderSignature)
	}
	certURL, err := CertURL(rawURL)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return verifyErr("signature is not base64")
	}
	pub, err := v.key(ctx, certURL)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return verifyErr("signature does not match the body")
	}
	return nil
}

// Timestamp implements Verifier.
func (v *Verifier) Timestamp(ts time.Time) error {
	d := v.cfg.Now().Sub(ts)
	if d < 0 {
		d = -d
	}
	if d > v.cfg.Tolerance {
		return verifyErr("timestamp is %s away from now (tolerance %s)", d.Round(time.Second), v.cfg.Tolerance)
	}
	return nil
}

// EventMaxAge is how old a skill event's timestamp may be: Amazon sends
// skill events late, and its own SDKs accept them up to an hour old.
const EventMaxAge = time.Hour

// EventTimestamp implements Verifier for skill events: up to EventMaxAge
// old, and no further ahead than the tolerance.
func (v *Verifier) EventTimestamp(ts time.Time) error {
	d := v.cfg.Now().Sub(ts)
	if d > EventMaxAge || -d > v.cfg.Tolerance {
		return verifyErr("skill event timestamp is %s away from now (accepted: up to %s old)", d.Round(time.Second), EventMaxAge)
	}
	return nil
}

// CertURL checks a SignatureCertChainUrl and returns it normalised: https,
// host s3.amazonaws.com (any case), port 443 if given, and a path under
// /echo.api/ once dot segments are resolved.
func CertURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", verifyErr("certificate URL does not parse")
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return "", verifyErr("certificate URL is not https")
	}
	if !strings.EqualFold(u.Hostname(), "s3.amazonaws.com") {
		return "", verifyErr("certificate URL host is not s3.amazonaws.com")
	}
	if p := u.Port(); p != "" && p != "443" {
		return "", verifyErr("certificate URL port is not 443")
	}
	if u.User != nil {
		return "", verifyErr("certificate URL has user info")
	}
	clean := path.Clean("/" + u.Path)
	if !strings.HasPrefix(clean, "/echo.api/") {
		return "", verifyErr("certificate URL path is not under /echo.api/")
	}
	// Re-escape the decoded path, so that a %3F, %23 or %25 in it stays
	// part of the path instead of becoming a query, a fragment or an
	// invalid escape.
	return (&url.URL{Scheme: "https", Host: "s3.amazonaws.com", Path: clean}).String(), nil
}

// key returns the verified signing key for certURL, from the cache while
// the certificate is valid.
func (v *Verifier) key(ctx context.Context, certURL string) (*rsa.PublicKey, error) {
	now := v.cfg.Now()
	v.mu.Lock()
	pub, ok := v.cache[certURL]
	until := v.until[certURL]
	failedAt, failed := v.failed[certURL]
	v.mu.Unlock()
	if ok && now.Before(until) {
		return pub, nil
	}
	if failed && now.Sub(failedAt) < failureTTL {
		return nil, verifyErr("certificate download failed recently")
	}
	ch := v.group.DoChan(certURL, func() (any, error) {
		// The download is shared by every request waiting for this URL, so
		// it must not end when the first of them is cancelled; it gets at
		// most fetchTimeout and what is left of that first request.
		start := time.Now()
		until := start.Add(fetchTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(until) {
			until = d
		}
		fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), until)
		defer cancel()
		pem, err := v.cfg.Fetcher.Fetch(fctx, certURL)
		if err != nil {
			// A download cut short by its request's deadline says nothing
			// about the URL: only one that had its full time is remembered.
			if fctx.Err() == nil || !until.Before(start.Add(fetchTimeout)) {
				v.mu.Lock()
				if len(v.failed) > 1000 {
					v.failed = map[string]time.Time{}
				}
				v.failed[certURL] = now
				v.mu.Unlock()
			}
			return nil, verifyErr("certificate download failed: %v", err)
		}
		leaf, until, err := v.verifyChain(pem, now)
		if err != nil {
			return nil, err
		}
		pub, ok := leaf.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, verifyErr("certificate key is not RSA")
		}
		v.mu.Lock()
		v.cache[certURL] = pub
		v.until[certURL] = until
		v.mu.Unlock()
		return pub, nil
	})
	// Each request waits for the download only as long as it has left.
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*rsa.PublicKey), nil
	case <-ctx.Done():
		return nil, verifyErr("certificate download did not finish within the request's deadline")
	}
}

// verifyChain parses a PEM chain (leaf first) and verifies it to the roots
// at now, with echo-api.amazon.com in the leaf's SANs. It returns the leaf
// and when the verified chain stops being valid (its earliest NotAfter).
func (v *Verifier) verifyChain(data []byte, now time.Time) (*x509.Certificate, time.Time, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, time.Time{}, verifyErr("certificate does not parse")
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, time.Time{}, verifyErr("no certificate in the chain")
	}
	leaf := certs[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, time.Time{}, verifyErr("certificate is not valid now")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		DNSName:       certSAN,
		Intermediates: inter,
		Roots:         v.cfg.Roots,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	// Exactly the name: Verify alone would also accept a wildcard.
	if !slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, certSAN) }) {
		return nil, time.Time{}, verifyErr("certificate does not name %s in its SANs", certSAN)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		var host x509.HostnameError
		if errors.As(err, &host) {
			return nil, time.Time{}, verifyErr("certificate does not name %s in its SANs", certSAN)
		}
		return nil, time.Time{}, verifyErr("certificate chain does not verify: %v", err)
	}
	var until time.Time
	for _, chain := range chains {
		end := chain[0].NotAfter
		for _, c := range chain[1:] {
			if c.NotAfter.Before(end) {
				end = c.NotAfter
			}
		}
		if end.After(until) {
			until = end
		}
	}
	return leaf, until, nil
}

type httpFetcher struct{ client *http.Client }

func (f *httpFetcher) Fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCertBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCertBytes {
		return nil, errors.New("certificate chain too large")
	}
	return b, nil
}

var _ RequestVerifier = (*Verifier)(nil)
