// Package alexatest is a test PKI for Alexa request signatures: a root CA
// and an intermediate, leaf certificates in every variant a verifier must
// accept or refuse, a CertFetcher that serves their chains from memory,
// and helpers that sign request bodies as Alexa does.
package alexatest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
)

// Base is the reference time of the test certificates: the start of the
// test binary, truncated to the second. Verifier tests run their clock at
// Base; the certificates also verify with time.Now for a day.
var Base = time.Now().Truncate(time.Second)

// BaseURL is where the Fetcher serves the chains, one per Variant.
const BaseURL = "https://s3.amazonaws.com/echo.api/"

// CanonicalURL is the URL Amazon itself signs with; the Fetcher serves the
// Valid chain there too.
const CanonicalURL = BaseURL + "echo-api-cert.pem"

// Variant names a certificate chain the Fetcher serves at URL(variant).
type Variant string

// The chains of the test PKI. Unless said otherwise a leaf has the SAN
// echo-api.amazon.com, the LeafKey, and comes with the test intermediate.
const (
	// Valid is a leaf that verifies.
	Valid Variant = "valid"
	// Expired is a leaf whose NotAfter is a day before Base.
	Expired Variant = "expired"
	// NotYetValid is a leaf whose NotBefore is a day after Base.
	NotYetValid Variant = "not-yet"
	// WrongSAN is a leaf for echo-api.amazon.com.evil.example and evil.example.
	WrongSAN Variant = "wrong-san"
	// CNOnly is a leaf with CN=echo-api.amazon.com and no SAN.
	CNOnly Variant = "cn-only"
	// Wildcard is a leaf for *.amazon.com, not the exact name.
	Wildcard Variant = "wildcard"
	// SelfSigned is a self-signed leaf with the right SAN and the ForgerKey.
	SelfSigned Variant = "self-signed"
	// Untrusted is a leaf with the right SAN and the ForgerKey, chained to
	// a root nobody trusts (sent along).
	Untrusted Variant = "untrusted"
	// NoIntermediate is the Valid leaf without its intermediate.
	NoIntermediate Variant = "no-inter"
	// ShortIntermediate is a leaf under an intermediate that expires
	// ShortIntermediateLife after Base, before the leaf does.
	ShortIntermediate Variant = "short-inter"
	// ECDSA is a leaf with the right SAN and chain but an ECDSA key.
	ECDSA Variant = "ecdsa"
	// Garbage is not PEM at all.
	Garbage Variant = "garbage"
	// BadDER is a CERTIFICATE block that does not parse.
	BadDER Variant = "bad-der"
	// Missing is not served: the Fetcher fails with a 404.
	Missing Variant = "missing"
	// ShortLeaf is a leaf that expires ShortLeafLife after Base.
	ShortLeaf Variant = "short-leaf"
)

// How long the certificates live after Base.
const (
	// LeafLife is the lifetime of the ordinary leaves.
	LeafLife = 24 * time.Hour
	// ShortLeafLife is the lifetime of the ShortLeaf leaf.
	ShortLeafLife = 1 * time.Hour
	// ShortIntermediateLife is the lifetime of the intermediate of
	// ShortIntermediate (its leaf lives LeafLife).
	ShortIntermediateLife = 2 * time.Hour
)

// URL returns the URL the Fetcher serves v at.
func URL(v Variant) string { return BaseURL + string(v) + ".pem" }

// PKI is the test CA hierarchy and the chains the Fetcher serves.
type PKI struct {
	// Roots trusts the test root only.
	Roots *x509.CertPool
	// LeafKey signs request bodies for every leaf chained to the test root.
	LeafKey *rsa.PrivateKey
	// ForgerKey is the key of the SelfSigned and Untrusted leaves.
	ForgerKey *rsa.PrivateKey
	// Chains maps a certificate URL to its PEM chain.
	Chains map[string][]byte
}

var (
	pkiOnce sync.Once
	pkiVal  *PKI
	pkiErr  error
)

// MustPKI returns the test PKI, generated once per test binary; it fails
// tb when the generation fails.
func MustPKI(tb testing.TB) *PKI {
	tb.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = newPKI() })
	if pkiErr != nil {
		tb.Fatalf("test PKI: %v", pkiErr)
	}
	return pkiVal
}

func newPKI() (*PKI, error) {
	keys := make([]*rsa.PrivateKey, 5)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	rootKey, interKey, leafKey, forgerKey, forgerCAKey := keys[0], keys[1], keys[2], keys[3], keys[4]
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	b := Base
	ca := func(cn string, from, to time.Time) *x509.Certificate {
		return &x509.Certificate{
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"voicegw test"}},
			NotBefore:             from,
			NotAfter:              to,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
	}
	leaf := func(cn string, san []string, from, to time.Time) *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn},
			DNSNames:    san,
			NotBefore:   from,
			NotAfter:    to,
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
	}
	var serial int64
	issue := func(tmpl, parent *x509.Certificate, pub any, signer crypto.Signer) (*x509.Certificate, []byte, error) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", tmpl.Subject.CommonName, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, err
		}
		return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
	}
	var errs []error
	must := func(c *x509.Certificate, p []byte, err error) (*x509.Certificate, []byte) {
		if err != nil {
			errs = append(errs, err)
		}
		return c, p
	}
	year := 365 * 24 * time.Hour
	root, _ := must(issue(ca("voicegw test root", b.Add(-year), b.Add(10*year)), nil, &rootKey.PublicKey, rootKey))
	inter, interPEM := must(issue(ca("voicegw test intermediate", b.Add(-year), b.Add(5*year)), root, &interKey.PublicKey, rootKey))
	shortInter, shortInterPEM := must(issue(ca("voicegw short intermediate", b.Add(-time.Hour), b.Add(ShortIntermediateLife)), root, &interKey.PublicKey, rootKey))
	forgerRoot, forgerRootPEM := must(issue(ca("forger root", b.Add(-year), b.Add(10*year)), nil, &forgerCAKey.PublicKey, forgerCAKey))

	san := []string{"echo-api.amazon.com"}
	now := func(d time.Duration) time.Time { return b.Add(d) }
	_, validPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(LeafLife)), inter, &leafKey.PublicKey, interKey))
	_, expiredPEM := must(issue(leaf("echo-api.amazon.com", san, now(-48*time.Hour), now(-24*time.Hour)), inter, &leafKey.PublicKey, interKey))
	_, notYetPEM := must(issue(leaf("echo-api.amazon.com", san, now(24*time.Hour), now(48*time.Hour)), inter, &leafKey.PublicKey, interKey))
	_, wrongSANPEM := must(issue(leaf("echo-api.amazon.com", []string{"echo-api.amazon.com.evil.example", "evil.example"}, now(-time.Hour), now(LeafLife)), inter, &leafKey.PublicKey, interKey))
	_, cnOnlyPEM := must(issue(leaf("echo-api.amazon.com", nil, now(-time.Hour), now(LeafLife)), inter, &leafKey.PublicKey, interKey))
	_, wildcardPEM := must(issue(leaf("*.amazon.com", []string{"*.amazon.com"}, now(-time.Hour), now(LeafLife)), inter, &leafKey.PublicKey, interKey))
	_, selfPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(LeafLife)), nil, &forgerKey.PublicKey, forgerKey))
	_, untrustedPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(LeafLife)), forgerRoot, &forgerKey.PublicKey, forgerCAKey))
	_, shortInterLeafPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(LeafLife)), shortInter, &leafKey.PublicKey, interKey))
	_, ecdsaPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(LeafLife)), inter, &ecKey.PublicKey, interKey))
	_, shortLeafPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(ShortLeafLife)), inter, &leafKey.PublicKey, interKey))
	if len(errs) > 0 {
		return nil, errs[0]
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &PKI{
		Roots:     roots,
		LeafKey:   leafKey,
		ForgerKey: forgerKey,
		Chains: map[string][]byte{
			URL(Valid):             cat(validPEM, interPEM),
			URL(Expired):           cat(expiredPEM, interPEM),
			URL(NotYetValid):       cat(notYetPEM, interPEM),
			URL(WrongSAN):          cat(wrongSANPEM, interPEM),
			URL(CNOnly):            cat(cnOnlyPEM, interPEM),
			URL(Wildcard):          cat(wildcardPEM, interPEM),
			URL(SelfSigned):        selfPEM,
			URL(Untrusted):         cat(untrustedPEM, forgerRootPEM),
			URL(NoIntermediate):    validPEM,
			URL(ShortIntermediate): cat(shortInterLeafPEM, shortInterPEM),
			URL(ECDSA):             cat(ecdsaPEM, interPEM),
			URL(Garbage):           []byte("this is not a certificate\n"),
			URL(BadDER):            pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}),
			URL(ShortLeaf):         cat(shortLeafPEM, interPEM),
			// The names the URL rule cases normalise to.
			CanonicalURL:  cat(validPEM, interPEM),
			BaseURL + "x": cat(validPEM, interPEM),
		},
	}, nil
}

// Fetcher serves the chains of a PKI from memory (no network) and counts
// the fetches per URL. It is safe for concurrent use.
type Fetcher struct {
	chains map[string][]byte
	mu     sync.Mutex
	total  int
	byURL  map[string]int
}

var _ alexa.CertFetcher = (*Fetcher)(nil)

// NewFetcher returns a Fetcher of p's chains that has fetched nothing yet.
func NewFetcher(p *PKI) *Fetcher {
	return &Fetcher{chains: p.Chains, byURL: map[string]int{}}
}

// Fetch implements alexa.CertFetcher: the chain at url, or an error as
// for an HTTP 404 when the PKI has none there.
func (f *Fetcher) Fetch(_ context.Context, url string) ([]byte, error) {
	f.mu.Lock()
	f.total++
	f.byURL[url]++
	f.mu.Unlock()
	b, ok := f.chains[url]
	if !ok {
		return nil, fmt.Errorf("status 404")
	}
	return b, nil
}

// Fetches returns how often url was fetched.
func (f *Fetcher) Fetches(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byURL[url]
}

// Total returns how many fetches there were, of any URL.
func (f *Fetcher) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// ByURL returns a copy of the fetch counts by URL.
func (f *Fetcher) ByURL() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.byURL)
}

// Sign returns the base64 RSA-SHA256 (PKCS #1 v1.5) signature of body
// with key, as Alexa sends it in Signature-256.
func Sign(tb testing.TB, key *rsa.PrivateKey, body []byte) string {
	tb.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// Header returns the headers of an Alexa request: Content-Type and the
// two signature headers, certURL and sig; an empty value leaves its
// header out.
func Header(certURL, sig string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if certURL != "" {
		h.Set(alexa.HeaderCertURL, certURL)
	}
	if sig != "" {
		h.Set(alexa.HeaderSignature, sig)
	}
	return h
}
