// Command load is a small load generator for a local voicegw: it posts N
// Alexa turns at C concurrent to a gateway on a loopback address, then
// prints the status counts, the errors and the latency percentiles.
//
//	go run ./bench/load -n 2000 -c 200
//
// It only ever connects to loopback addresses and stops after N requests.
// See bench/README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
)

// Bounds on the flags, so that a typo cannot start an endless run.
const (
	maxTurns       = 1_000_000
	maxConcurrency = 10_000
)

// slotFlags collects repeated -slot K=V flags.
type slotFlags map[string]string

func (s slotFlags) String() string { return fmt.Sprint(map[string]string(s)) }

func (s slotFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", v)
	}
	s[k] = val
	return nil
}

// result is the outcome of one turn.
type result struct {
	status  int
	took    time.Duration
	err     string // transport error, or why a 200 is not a valid answer
	speech  bool
	invalid bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:8080/alexa", "the gateway's Alexa endpoint (loopback only)")
	n := fs.Int("n", 1000, "number of turns to send")
	c := fs.Int("c", 50, "concurrent turns")
	appID := fs.String("app", "amzn1.ask.skill.weather-example", "application id of the requests")
	intent := fs.String("intent", "AboutIntent", "intent to ask for")
	launch := fs.Bool("launch", false, "send LaunchRequests instead of an intent")
	user := fs.String("user", "amzn1.ask.account.LOAD", "userId of the requests")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request client timeout")
	slots := slotFlags{}
	fs.Var(slots, "slot", "a slot value K=V (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || *n > maxTurns {
		fmt.Fprintf(stderr, "load: -n must be between 1 and %d\n", maxTurns)
		return 2
	}
	if *c < 1 || *c > maxConcurrency {
		fmt.Fprintf(stderr, "load: -c must be between 1 and %d\n", maxConcurrency)
		return 2
	}
	*c = min(*c, *n)
	if err := checkLoopback(*target); err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	}

	spec := alexa.RequestSpec{ApplicationID: *appID, UserID: *user, Type: "IntentRequest", Intent: *intent, Slots: slots}
	if *launch {
		spec.Type, spec.Intent, spec.Slots = "LaunchRequest", "", nil
	}
	client := loopbackClient(*c, *timeout)

	results := make([]result, *n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := spec
				s.Timestamp = time.Now()
				results[i] = turn(client, *target, alexa.BuildRequest(s))
			}
		}()
	}
	for i := 0; i < *n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	return report(stdout, results, *c, elapsed)
}

// checkLoopback refuses any target that is not http(s) on localhost or a
// loopback IP address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url: scheme %q, want http or https", u.Scheme)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url: %q is not a loopback address; this tool only loads a local gateway", host)
}

// loopbackClient returns a client that connects only to loopback
// addresses (checked on every dial, whatever a name resolves to), uses no
// proxy and follows no redirect.
func loopbackClient(conns int, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not loopback", address)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// turn posts one request and checks that a 200 is an Alexa response.
func turn(client *http.Client, target string, body []byte) result {
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return result{err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{took: time.Since(t0), err: err.Error()}
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r := result{status: resp.StatusCode, took: time.Since(t0)}
	if err != nil {
		r.err = "reading the body: " + err.Error()
		return r
	}
	if resp.StatusCode != http.StatusOK {
		return r
	}
	var ar alexa.Response
	if err := json.Unmarshal(out, &ar); err != nil {
		r.invalid, r.err = true, "200 that is not an Alexa response"
		return r
	}
	r.speech = strings.TrimSpace(ar.Speech()) != ""
	return r
}

// report prints the summary and returns the exit status: 1 when any turn
// failed in transport, got a 5xx or an invalid 200.
func report(w io.Writer, results []result, conc int, elapsed time.Duration) int {
	statuses := map[int]int{}
	errs := map[string]int{}
	var lat []time.Duration
	invalid, noSpeech, fivexx, transport := 0, 0, 0, 0
	for _, r := range results {
		if r.status == 0 {
			transport++
		} else {
			statuses[r.status]++
			lat = append(lat, r.took)
		}
		if r.status >= 500 {
			fivexx++
		}
		if r.err != "" {
			errs[r.err]++
		}
		if r.invalid {
			invalid++
		}
		if r.status == http.StatusOK && !r.invalid && !r.speech {
			noSpeech++
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))].Round(10 * time.Microsecond)
	}
	fmt.Fprintf(w, "turns       %d at %d concurrent in %s (%.0f turns/s)\n",
		len(results), conc, elapsed.Round(time.Millisecond), float64(len(results))/elapsed.Seconds())
	codes := make([]int, 0, len(statuses))
	for code := range statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		fmt.Fprintf(w, "status %d  %d\n", code, statuses[code])
	}
	fmt.Fprintf(w, "errors      %d transport, %d 5xx, %d invalid 200, %d 200 without speech\n",
		transport, fivexx, invalid, noSpeech)
	msgs := make([]string, 0, len(errs))
	for m := range errs {
		msgs = append(msgs, m)
	}
	sort.Strings(msgs)
	for _, m := range msgs {
		fmt.Fprintf(w, "  %6d x %s\n", errs[m], m)
	}
	fmt.Fprintf(w, "latency     p50 %s  p95 %s  p99 %s  max %s\n", pct(0.50), pct(0.95), pct(0.99), pct(1))
	if transport > 0 || fivexx > 0 || invalid > 0 {
		return 1
	}
	return 0
}
