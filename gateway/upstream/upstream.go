// Package upstream performs the HTTP calls of a turn: one shared, tuned
// transport for all services, retries of idempotent calls, a response size
// cap and no redirect to another host. Errors never carry the request URL,
// whose query may hold a credential.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/voicegw/voicegw/gateway/config"
)

// Response is an upstream answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Errors the engine branches on.
var (
	// ErrTooLarge: the body exceeded the service's max_response_bytes.
	ErrTooLarge = errors.New("response body too large")
	// ErrTimeout: the call's deadline passed.
	ErrTimeout = errors.New("timed out")
)

// Options tunes the shared transport.
type Options struct {
	// MaxIdleConnsPerHost bounds the keep-alive pool per upstream host.
	MaxIdleConnsPerHost int
	// Backoff is the pause before a retry, doubled each time.
	Backoff time.Duration
}

// DefaultOptions suit hundreds of concurrent turns against a few hosts.
var DefaultOptions = Options{MaxIdleConnsPerHost: 256, Backoff: 50 * time.Millisecond}

// Client calls upstream services.
type Client struct {
	http    *http.Client
	backoff time.Duration
}

// New returns a client with its own shared transport.
func New(opts Options) *Client {
	if opts.MaxIdleConnsPerHost == 0 {
		opts.MaxIdleConnsPerHost = DefaultOptions.MaxIdleConnsPerHost
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // the call's context bounds the whole call
	}
	return &Client{
		http: &http.Client{
			Transport:     tr,
			CheckRedirect: sameHost,
		},
		backoff: opts.Backoff,
	}
}

// sameHost follows at most five redirects, and only to the same scheme and
// host, so a credential never travels to another server.
func sameHost(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return http.ErrUseLastResponse
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func retryStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// Call sends req (whose context carries the call's deadline) to svc,
// retrying idempotent calls on connect errors and 502, 503 and 504 up to
// svc.Retries times, and reads the body up to svc.MaxResponseBytes.
func (c *Client) Call(svc *config.Service, req *http.Request) (*Response, error) {
	ctx := req.Context()
	attempts := 1
	if idempotent(req.Method) {
		attempts += svc.Retries
	}
	var last error
	wait := c.backoff
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := sleep(ctx, wait); err != nil {
				break
			}
			wait *= 2
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("%s %s: rewind body: %w", req.Method, svc.Name, err)
				}
				req.Body = body
			}
		}
		resp, err := c.once(svc, req)
		if err != nil {
			last = err
			if errors.Is(err, ErrTimeout) || !connectError(err) {
				return nil, err
			}
			continue
		}
		if retryStatus(resp.Status) && i+1 < attempts {
			last = nil
			continue
		}
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, svc.Name, ErrTimeout)
	}
	if last == nil {
		last = fmt.Errorf("%s %s: retries exhausted", req.Method, svc.Name)
	}
	return nil, last
}

func (c *Client) once(svc *config.Service, req *http.Request) (*Response, error) {
	ctx := req.Context()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, svc.Name, ErrTimeout)
		}
		// *url.Error names the URL, whose query may hold a credential:
		// keep only the cause.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, svc.Name, err)
	}
	defer resp.Body.Close()
	max := svc.MaxResponseBytes
	if max <= 0 {
		max = config.DefaultMaxResponseBytes
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s %s: %d bytes: %w", req.Method, svc.Name, resp.ContentLength, ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: reading body: %w", req.Method, svc.Name, ErrTimeout)
		}
		return nil, fmt.Errorf("%s %s: reading body: %w", req.Method, svc.Name, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%s %s: over %d bytes: %w", req.Method, svc.Name, max, ErrTooLarge)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// connectError reports whether err happened before the request reached
// the server, so that even a non-idempotent call may be retried safely.
func connectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "dial"
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
