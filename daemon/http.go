package daemon

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmreconcile/vmreconcile/config"
)

// Handler serves /metrics, /livez and /readyz.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.m.reg, promhttp.HandlerOpts{Registry: d.m.reg}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	return mux
}

// SourceStatus is one source in the /readyz body.
type SourceStatus struct {
	Source      string     `json:"source"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Ready  bool           `json:"ready"`
	MaxAge string         `json:"max_age"`
	Stale  []SourceStatus `json:"stale,omitempty"`
}

// Ready reports whether every configured source was collected successfully
// within ready.max_age, and which are stale otherwise.
func (d *Daemon) Ready() Readiness {
	now := d.now()
	r := Readiness{Ready: true, MaxAge: d.cfg.Ready.MaxAge.String()}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, src := range d.Sources() {
		at, ok := d.sourceOK[src]
		if ok && (d.cfg.Ready.MaxAge <= 0 || now.Sub(at) <= d.cfg.Ready.MaxAge) {
			continue
		}
		s := SourceStatus{Source: src, Error: d.sourceErr[src]}
		if ok {
			t := at
			s.LastSuccess = &t
		} else if s.Error == "" {
			s.Error = "never collected"
		}
		r.Stale = append(r.Stale, s)
	}
	sort.Slice(r.Stale, func(i, j int) bool { return r.Stale[i].Source < r.Stale[j].Source })
	r.Ready = len(r.Stale) == 0
	return r
}

func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	rd := d.Ready()
	w.Header().Set("Content-Type", "application/json")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rd)
}

// serve starts the HTTP server on Options.Listener or Config.Listen.
func (d *Daemon) serve() (*http.Server, error) {
	ln := d.opts.Listener
	if ln == nil {
		if d.cfg.Listen == "" {
			return nil, nil
		}
		var err error
		if ln, err = Listen(d.cfg.Listen); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	d.addr = ln.Addr().String()
	d.mu.Unlock()
	srv := &http.Server{Addr: ln.Addr().String(), Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()
	return srv, nil
}

// Listen opens the listener of the listen key, for Options.Listener (a
// caller that must know the server listens before Run, such as systemd's
// READY=1); an error names the key and the fix.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &config.Error{Key: "listen", Msg: "cannot listen on " + addr + ": " + listenErr(err) + " (fix: a free host:port, or \"\" to disable)"}
	}
	return ln, nil
}

// Addr returns the address the HTTP server listens on ("" before Run or when
// disabled).
func (d *Daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

func listenErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// NewLogger returns the slog logger log.format and log.level ask for,
// writing to w (os.Stderr when nil).
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var lvl slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
