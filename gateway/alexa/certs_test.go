package alexa_test

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
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pkiBase is the reference time of the test certificates and the clock
// the verifier tests run at: the start of the test binary, so that the
// certificates also verify with time.Now (the benchmark) for a day.
var pkiBase = time.Now().Truncate(time.Second)

// certBaseURL is where the test fetcher serves chains, one per variant.
const certBaseURL = "https://s3.amazonaws.com/echo.api/"

// Certificate variants the test fetcher serves at certBaseURL + name + ".pem".
const (
	certValid       = "valid"       // leaf (SAN echo-api.amazon.com) + intermediate
	certExpired     = "expired"     // leaf NotAfter in the past
	certNotYetValid = "not-yet"     // leaf NotBefore in the future
	certWrongSAN    = "wrong-san"   // SAN echo-api.amazon.com.evil.example
	certCNOnly      = "cn-only"     // CN=echo-api.amazon.com, no SAN
	certWildcard    = "wildcard"    // SAN *.amazon.com, not the exact name
	certSelfSigned  = "self-signed" // self-signed leaf with the right SAN
	certUntrusted   = "untrusted"   // right SAN, chained to a root nobody trusts (sent along)
	certNoInter     = "no-inter"    // valid leaf without its intermediate
	certShortInter  = "short-inter" // valid leaf under an intermediate that expires first
	certECDSA       = "ecdsa"       // right SAN and chain, but an ECDSA key
	certGarbage     = "garbage"     // not PEM at all
	certBadDER      = "bad-der"     // a CERTIFICATE block that does not parse
	certMissing     = "missing"     // the fetcher fails (404)
	certShortLeaf   = "short-leaf"  // valid leaf that expires shortLeafLife after pkiBase
)

// How long certificates live after pkiBase.
const (
	certLeafLife   = 24 * time.Hour // the ordinary leaves
	shortLeafLife  = 1 * time.Hour  // the short leaf
	shortInterLife = 2 * time.Hour  // the short intermediate (its leaf lives certLeafLife)
)

// verifyPKI is a test CA hierarchy and the chains the fetcher serves.
type verifyPKI struct {
	// Roots trusts the test root only.
	Roots *x509.CertPool
	// LeafKey signs request bodies for every leaf chained to the test root.
	LeafKey *rsa.PrivateKey
	// ForgerKey is the key of the self-signed and untrusted leaves.
	ForgerKey *rsa.PrivateKey
	// Chains maps a certificate URL to its PEM chain.
	Chains map[string][]byte
}

var (
	pkiOnce sync.Once
	pkiVal  *verifyPKI
	pkiErr  error
)

// mustVerifyPKI returns the test PKI, generated once per test binary.
func mustVerifyPKI(tb testing.TB) *verifyPKI {
	tb.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = newVerifyPKI() })
	if pkiErr != nil {
		tb.Fatalf("test PKI: %v", pkiErr)
	}
	return pkiVal
}

// certURLOf returns the URL the fetcher serves variant at.
func certURLOf(variant string) string { return certBaseURL + variant + ".pem" }

func newVerifyPKI() (*verifyPKI, error) {
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
	b := pkiBase
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
	shortInter, shortInterPEM := must(issue(ca("voicegw short intermediate", b.Add(-time.Hour), b.Add(shortInterLife)), root, &interKey.PublicKey, rootKey))
	forgerRoot, forgerRootPEM := must(issue(ca("forger root", b.Add(-year), b.Add(10*year)), nil, &forgerCAKey.PublicKey, forgerCAKey))

	san := []string{"echo-api.amazon.com"}
	now := func(d time.Duration) time.Time { return b.Add(d) }
	_, validPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(certLeafLife)), inter, &leafKey.PublicKey, interKey))
	_, expiredPEM := must(issue(leaf("echo-api.amazon.com", san, now(-48*time.Hour), now(-24*time.Hour)), inter, &leafKey.PublicKey, interKey))
	_, notYetPEM := must(issue(leaf("echo-api.amazon.com", san, now(24*time.Hour), now(48*time.Hour)), inter, &leafKey.PublicKey, interKey))
	_, wrongSANPEM := must(issue(leaf("echo-api.amazon.com", []string{"echo-api.amazon.com.evil.example", "evil.example"}, now(-time.Hour), now(certLeafLife)), inter, &leafKey.PublicKey, interKey))
	_, cnOnlyPEM := must(issue(leaf("echo-api.amazon.com", nil, now(-time.Hour), now(certLeafLife)), inter, &leafKey.PublicKey, interKey))
	_, wildcardPEM := must(issue(leaf("*.amazon.com", []string{"*.amazon.com"}, now(-time.Hour), now(certLeafLife)), inter, &leafKey.PublicKey, interKey))
	_, selfPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(certLeafLife)), nil, &forgerKey.PublicKey, forgerKey))
	_, untrustedPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(certLeafLife)), forgerRoot, &forgerKey.PublicKey, forgerCAKey))
	_, shortInterLeafPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(certLeafLife)), shortInter, &leafKey.PublicKey, interKey))
	_, ecdsaPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(certLeafLife)), inter, &ecKey.PublicKey, interKey))
	_, shortLeafPEM := must(issue(leaf("echo-api.amazon.com", san, now(-time.Hour), now(shortLeafLife)), inter, &leafKey.PublicKey, interKey))
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
	return &verifyPKI{
		Roots:     roots,
		LeafKey:   leafKey,
		ForgerKey: forgerKey,
		Chains: map[string][]byte{
			certURLOf(certValid):       cat(validPEM, interPEM),
			certURLOf(certExpired):     cat(expiredPEM, interPEM),
			certURLOf(certNotYetValid): cat(notYetPEM, interPEM),
			certURLOf(certWrongSAN):    cat(wrongSANPEM, interPEM),
			certURLOf(certCNOnly):      cat(cnOnlyPEM, interPEM),
			certURLOf(certWildcard):    cat(wildcardPEM, interPEM),
			certURLOf(certSelfSigned):  selfPEM,
			certURLOf(certUntrusted):   cat(untrustedPEM, forgerRootPEM),
			certURLOf(certNoInter):     validPEM,
			certURLOf(certShortInter):  cat(shortInterLeafPEM, shortInterPEM),
			certURLOf(certECDSA):       cat(ecdsaPEM, interPEM),
			certURLOf(certGarbage):     []byte("this is not a certificate\n"),
			certURLOf(certBadDER):      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}),
			certURLOf(certShortLeaf):   cat(shortLeafPEM, interPEM),
			// The names the URL rule cases normalise to.
			certBaseURL + "echo-api-cert.pem": cat(validPEM, interPEM),
			certBaseURL + "x":                 cat(validPEM, interPEM),
		},
	}, nil
}

// pkiFetcher serves the test chains from memory (no network) and counts
// fetches per URL.
type pkiFetcher struct {
	chains map[string][]byte
	total  atomic.Int64
	mu     sync.Mutex
	byURL  map[string]int
}

func newPKIFetcher(p *verifyPKI) *pkiFetcher {
	return &pkiFetcher{chains: p.Chains, byURL: map[string]int{}}
}

// Fetch implements alexa.CertFetcher.
func (f *pkiFetcher) Fetch(_ context.Context, url string) ([]byte, error) {
	f.total.Add(1)
	f.mu.Lock()
	f.byURL[url]++
	f.mu.Unlock()
	b, ok := f.chains[url]
	if !ok {
		return nil, fmt.Errorf("status 404")
	}
	return b, nil
}

// Fetches returns how often url was fetched.
func (f *pkiFetcher) Fetches(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byURL[url]
}

// signRaw returns the base64 RSA-SHA256 (PKCS #1 v1.5) signature of body,
// as Alexa sends it in Signature-256.
func signRaw(tb testing.TB, key *rsa.PrivateKey, body []byte) string {
	tb.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}
