// Package engine runs one turn: it picks the skill's launch, built-in or
// configured intent, runs the dialog checks, renders and sends the calls,
// extracts values from the answers and renders the reply, turning every
// failure into speech within the turn's deadline.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// Caller sends one upstream request; the request's context carries the
// call's deadline.
type Caller interface {
	Call(svc *config.Service, req *http.Request) (*upstream.Response, error)
}

// Credentials finds the credential of a call and a fresh one after the
// upstream rejected it with status (401 or 403).
type Credentials interface {
	Get(ctx context.Context, svc *config.Service, turn *gateway.Turn) (*auth.Credential, error)
	Rejected(ctx context.Context, svc *config.Service, turn *gateway.Turn, cred *auth.Credential, status int) (*auth.Credential, error)
}

// Linker speaks the account-linking instructions for a user without a
// token. It may be nil, in which case the built-in sentence asks the user
// to link in the Alexa app.
type Linker interface {
	// Instructions returns the speech and card text for linking svc.
	Instructions(ctx context.Context, svc *config.Service, userID string) (string, error)
}

// Forgetter forgets what the gateway keeps of a user who removed the
// skill: their linked tokens (every version) and pending link codes. It
// may be nil, without a secret store.
type Forgetter interface {
	Forget(ctx context.Context, userID string) error
}

// Progress sends an intent's progressive speech while its calls run.
type Progress interface {
	Send(ctx context.Context, t *gateway.Turn, s gateway.Speech) error
}

// Observer is told about every turn and upstream call, for metrics. Its
// label values come from the configuration only: the skill, the intent
// when it is configured or built in (else "other"), the service.
type Observer interface {
	// Turn reports a finished turn and its outcome ("ok", "status",
	// "timeout", "unlinked", "vault", "missing", "default").
	Turn(skill, intent, outcome string, took time.Duration)
	// Call reports one upstream call: its HTTP status, or 0 when none
	// answered.
	Call(service string, status int, took time.Duration)
}

// Engine runs turns against one loaded configuration. It is safe for
// concurrent use.
type Engine struct {
	cfg      *config.Config
	calls    Caller
	creds    Credentials
	linker   Linker
	forget   Forgetter
	progress Progress
	observer Observer
	log      *slog.Logger
	byAppID  map[string]*config.Skill
}

// Options are the engine's collaborators.
type Options struct {
	Caller      Caller
	Credentials Credentials
	Linker      Linker
	// Forgetter may be nil: a user who removes the skill leaves nothing
	// to forget.
	Forgetter Forgetter
	// Progress may be nil: no progressive responses.
	Progress Progress
	// Observer may be nil: no metrics.
	Observer Observer
	Logger   *slog.Logger
}

// New returns an engine for cfg.
func New(cfg *config.Config, opts Options) *Engine {
	e := &Engine{
		cfg:      cfg,
		calls:    opts.Caller,
		creds:    opts.Credentials,
		linker:   opts.Linker,
		forget:   opts.Forgetter,
		progress: opts.Progress,
		observer: opts.Observer,
		log:      opts.Logger,
		byAppID:  map[string]*config.Skill{},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	for _, sk := range cfg.Skills {
		if sk.ApplicationID != "" {
			e.byAppID[sk.ApplicationID] = sk
		}
	}
	return e
}

// Config returns the configuration the engine runs.
func (e *Engine) Config() *config.Config { return e.cfg }

// SkillFor picks the skill of a request: by name when the URL names one
// (its application id, when set, must match), else by application id.
func (e *Engine) SkillFor(name, applicationID string) (string, error) {
	if name != "" {
		sk, ok := e.cfg.Skills[name]
		if !ok {
			return "", gateway.ErrUnknownSkill
		}
		if sk.ApplicationID != "" && sk.ApplicationID != applicationID {
			return "", gateway.ErrWrongApplication
		}
		return name, nil
	}
	sk, ok := e.byAppID[applicationID]
	if !ok {
		return "", gateway.ErrUnknownSkill
	}
	return sk.Name, nil
}

// Turn answers one turn. It always returns a reply: failures become
// error speech. The turn gets server.deadline from now, or less when ctx
// already has an earlier deadline.
func (e *Engine) Turn(ctx context.Context, t *gateway.Turn) *gateway.Reply {
	start := time.Now()
	// The server has usually set the deadline from the request's arrival
	// already; a second, later one would only cost a context per turn.
	if limit := start.Add(e.cfg.Server.Deadline.Or(config.DefaultDeadline)); !hasDeadlineBy(ctx, limit) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, limit)
		defer cancel()
	}
	sk := e.cfg.Skills[t.Skill]
	if sk == nil {
		return &gateway.Reply{Empty: true}
	}
	r := &run{e: e, ctx: ctx, turn: t, skill: sk}
	reply := r.answer()
	took := time.Since(start)
	e.log.LogAttrs(ctx, slog.LevelInfo, "turn",
		slog.String("request_id", t.RequestID),
		slog.String("skill", sk.Name),
		slog.String("request", t.Type),
		slog.String("intent", t.Intent),
		slog.Int("status", r.status),
		slog.String("outcome", r.outcome()),
		slog.Float64("ms", float64(took.Microseconds())/1000),
	)
	if e.observer != nil {
		e.observer.Turn(sk.Name, r.intentLabel(), r.outcome(), took)
	}
	return reply
}

// Waits reports whether a turn may wait on a dependency: its launch or
// intent (configured or built in) has calls to make. Other turns only
// render templates.
func (e *Engine) Waits(t *gateway.Turn) bool {
	sk := e.cfg.Skills[t.Skill]
	if sk == nil {
		return false
	}
	r := &run{e: e, turn: t, skill: sk}
	switch t.Kind {
	case gateway.KindLaunch:
		return sk.LaunchC != nil && len(sk.LaunchC.Calls) > 0
	case gateway.KindIntent:
		c := r.compiled()
		return c != nil && len(c.Calls) > 0
	}
	return false
}

// TimedOut answers a turn that Turn could not finish by its deadline (a
// dependency held it past the deadline): the `timeout` error speech of the
// turn's intent, skill or gateway, rendered without any call's results.
// The late turn still reports its own outcome when it ends.
func (e *Engine) TimedOut(t *gateway.Turn) *gateway.Reply {
	sk := e.cfg.Skills[t.Skill]
	if sk == nil || (t.Kind != gateway.KindLaunch && t.Kind != gateway.KindIntent) {
		return &gateway.Reply{Empty: true}
	}
	r := &run{e: e, ctx: context.Background(), turn: t, skill: sk, locale: sk.LocaleFor(t.Locale)}
	c := sk.LaunchC
	if t.Kind == gateway.KindIntent {
		c = r.compiled()
	}
	r.data = r.newData(c)
	return r.fail(c, &turnError{kind: kindTimeout, err: errors.New("turn overran its deadline")})
}

// ErrTemplate marks a template that failed at run time.
var ErrTemplate = errors.New("template failed")

// hasDeadlineBy reports whether ctx ends at limit or before.
func hasDeadlineBy(ctx context.Context, limit time.Time) bool {
	dl, ok := ctx.Deadline()
	return ok && !dl.After(limit)
}
