package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/scale"
	"github.com/vmreconcile/vmreconcile/store"
)

const hookSecret = "hook-secret-value-1234"

// vcsim starts an in-process vcsim (no default VMs) and returns a client and
// the config entry that reaches it. delay, when set, slows every
// RetrievePropertiesEx by that many milliseconds.
func startVCSim(t *testing.T, delayMS int) (*vim25.Client, config.VCenter) {
	t.Helper()
	model, c, vc := vcsimModel(t)
	if delayMS > 0 {
		slowVCSim(model, delayMS)
	}
	return c, vc
}

// vcsimModel is vcsim, also returning the model (to slow it down later).
func vcsimModel(t *testing.T) (*simulator.Model, *vim25.Client, config.VCenter) {
	t.Helper()
	model := simulator.VPX()
	model.Machine = 0
	if err := scale.CreateModel(model); err != nil { // one at a time: see scale.CreateModel
		t.Fatal(err)
	}
	model.Service.RegisterEndpoints = true // vAPI (tags), read by remediation
	srv := model.Service.NewServer()
	t.Cleanup(func() { srv.Close(); model.Remove() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := govmomi.NewClient(ctx, srv.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := srv.URL.User.Password()
	u := *srv.URL
	u.User = nil
	return model, c.Client, config.VCenter{URL: u.String(), Username: srv.URL.User.Username(), Password: config.Secret(pw), Insecure: true}
}

// slowVCSim delays every RetrievePropertiesEx of model's server by ms
// (vcsim reads its DelayConfig per call, so this works on a running server).
func slowVCSim(model *simulator.Model, ms int) {
	model.DelayConfig.MethodDelay = map[string]int{"RetrievePropertiesEx": ms}
}

// received is one webhook delivery.
type received struct {
	at    time.Time
	alert Alert
	sigOK bool
}

// hookServer is the test's webhook receiver. fail, while > 0, makes it
// answer 500 (and counts down).
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	fail int
	wake chan struct{}
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{wake: make(chan struct{}, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail > 0 {
			h.fail--
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("webhook body is not an Alert: %v: %s", err, body)
		}
		h.got = append(h.got, received{at: time.Now(), alert: a, sigOK: VerifySignature(hookSecret, body, r.Header.Get(SignatureHeader))})
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// alerts returns the deliveries of event (any when "") for kind and node.
func (h *hookServer) alerts(event, kind, node string) []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []received
	for _, r := range h.got {
		if (event == "" || r.alert.Event == event) && r.alert.Finding.Kind == kind && (node == "" || r.alert.Finding.NodeID == node) {
			out = append(out, r)
		}
	}
	return out
}

// waitAlert waits until a delivery of event/kind/node arrives.
func (h *hookServer) waitAlert(t *testing.T, timeout time.Duration, event, kind, node string) received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := h.alerts(event, kind, node); len(got) > 0 {
			return got[0]
		}
		select {
		case <-h.wake:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			h.mu.Lock()
			var all []string
			for _, r := range h.got {
				all = append(all, r.alert.Event+" "+r.alert.Finding.Kind+" "+r.alert.Finding.NodeID)
			}
			h.mu.Unlock()
			t.Fatalf("no %s alert for %s on node %s within %s; got %v", event, kind, node, timeout, all)
		}
	}
}

// running is a daemon started by startDaemon.
type running struct {
	d      *Daemon
	st     *store.Store
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	url    string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon opens the store at path (exclusive) and runs a daemon on it
// until the returned stop is called (or the test ends).
func startDaemon(t *testing.T, cfg config.Config, path string, tweak func(*Options)) *running {
	t.Helper()
	st, err := store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts := Options{Config: cfg, Store: st, Listener: ln, Logger: NewLogger(config.Log{Format: "json", Level: "debug"}, logs),
		AlertBackoff: 50 * time.Millisecond, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}
	if tweak != nil {
		tweak(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, st: st, cancel: cancel, done: make(chan error, 1), logs: logs, url: "http://" + ln.Addr().String()}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("daemon did not stop within 30s")
	}
	if err := r.st.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(r.logs.String(), 60))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits for /readyz to answer 200.
func (r *running) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := r.get(t, "/readyz")
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s: %d %s\nlog:\n%s", timeout, code, body, tail(r.logs.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metric returns the value of the sample whose line starts with prefix
// (name and labels), or -1 when absent.
func (r *running) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	_, body := r.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, prefix+" "), "%g", &v)
			return v
		}
	}
	return -1
}

// baseConfig is a valid config with schedules that stay out of the way.
func baseConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Schedules.Audit = "@every 1h"
	cfg.Schedules.Lineage = "@every 1h"
	cfg.Schedules.Prune = "@every 1h"
	cfg.Listen = ""
	cfg.Store.Path = filepath.Join(t.TempDir(), "state.db")
	cfg.Ready.MaxAge = time.Minute
	// A resolution still needs 3 consecutive runs without the finding, but
	// only a second between the first and the last: tests run audits back
	// to back.
	cfg.Findings.ResolveAfter = time.Second
	return cfg
}

func vimRef(value string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: value}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
