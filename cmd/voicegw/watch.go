package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/server"
)

// reloadDebounce gathers the several events of one save (an editor's
// write-rename, Kubernetes' symlink swap of a ConfigMap) into one reload.
const reloadDebounce = 200 * time.Millisecond

// reloader loads the configuration again on SIGHUP and, with --watch, when
// the file changes; a configuration that fails to load is logged and the
// running one kept (SPEC 1). Reloads run one at a time.
type reloader struct {
	path string
	d    *deps
	srv  *server.Server
	log  *slog.Logger
}

// run reloads until ctx is done.
func (r *reloader) run(ctx context.Context, watch bool) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var changed <-chan struct{}
	if watch {
		c, err := r.watch(ctx)
		if err != nil {
			r.log.Error("cannot watch the configuration; reload with SIGHUP", "file", r.path, "error", err.Error())
		} else {
			changed = c
			r.log.Info("watching the configuration for changes", "file", r.path)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload("SIGHUP")
		case <-changed:
			r.reload("file changed")
		}
	}
}

func (r *reloader) reload(cause string) {
	next, problems := config.Load(r.path)
	if next == nil {
		for _, p := range problems.Errors() {
			r.log.Error("reload failed, keeping the running configuration", "cause", cause, "problem", p.Error())
		}
		r.d.metrics.Reload("failed")
		return
	}
	rt, err := r.d.serveRuntime(next)
	if err != nil {
		r.log.Error("reload failed, keeping the running configuration", "cause", cause, "error", err.Error())
		r.d.metrics.Reload("failed")
		return
	}
	r.srv.Swap(rt)
	r.d.metrics.Reload("ok")
	r.log.Info("configuration reloaded", "cause", cause, "file", r.path, "skills", len(next.Skills))
}

// watch reports changes of the configuration file, debounced. It watches
// the file's directory, not the file: editors and Kubernetes replace the
// file rather than write it in place, which ends a watch on the file.
func (r *reloader) watch(ctx context.Context) (<-chan struct{}, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(r.path)
	if err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, err
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Close()
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				// The file itself, or Kubernetes' ..data link that its
				// symlink points through.
				if name := filepath.Base(ev.Name); name == filepath.Base(abs) || name == "..data" {
					fire = time.After(reloadDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				r.log.Warn("watching the configuration", "error", err.Error())
			case <-fire:
				fire = nil
				select {
				case out <- struct{}{}:
				default: // a reload is already due
				}
			}
		}
	}()
	return out, nil
}
