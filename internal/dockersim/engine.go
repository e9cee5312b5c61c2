package dockersim

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
)

// Mode is the swarm role of the simulated engine, as reported by /_ping's
// "Swarm" header and /info's Swarm section.
type Mode int

const (
	// ModeManager is an active swarm manager (the leader): node endpoints work.
	ModeManager Mode = iota
	// ModeWorker is an active swarm worker: node endpoints answer 503 with
	// dockerd's "Worker nodes can't be used to view or modify cluster state" error.
	ModeWorker
	// ModeInactive is an engine that is not part of a swarm: node endpoints
	// answer 503 with dockerd's "Use \"docker swarm init\"..." error.
	ModeInactive
)

func (m Mode) String() string {
	switch m {
	case ModeManager:
		return "manager"
	case ModeWorker:
		return "worker"
	case ModeInactive:
		return "inactive"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults used when the corresponding Options field is empty.
const (
	DefaultAPIVersion    = "1.47"
	DefaultMinAPIVersion = "1.24"
	DefaultServerVersion = "27.5.1-sim"
	// DefaultEventLimit is dockerd's own retention: daemon/events keeps the
	// last 256 events for replay (its 1024 is the live pubsub buffer size).
	DefaultEventLimit = 256
)

// Options configures an Engine. The zero value is a usable swarm manager.
type Options struct {
	// Mode is the swarm role of the engine being talked to (default ModeManager).
	Mode Mode
	// Self describes the engine's own node (the manager the tool talks to).
	// A real swarm always lists it, so in ModeManager it is part of /nodes
	// (role manager, leader). Zero fields get defaults (hostname "sim-manager-1").
	// In ModeWorker it is the local worker's node (not listed, since /nodes
	// is unavailable there); in ModeInactive it only supplies /info's Name,
	// NCPU and MemTotal.
	Self NodeSpec
	// ClusterID is the swarm cluster ID (generated when empty).
	ClusterID string
	// APIVersion is the highest API version served and the one advertised in
	// the Api-Version header (default DefaultAPIVersion).
	APIVersion string
	// MinAPIVersion is the lowest API version accepted (default DefaultMinAPIVersion).
	MinAPIVersion string
	// ServerVersion is the engine version in /version, /info and the Server
	// header (default DefaultServerVersion). Nodes added without an
	// EngineVersion report it too, minus any "-sim" suffix.
	ServerVersion string
	// EventLimit is how many events are kept for replay (default
	// DefaultEventLimit, dockerd's value). Older events are dropped.
	EventLimit int
	// TCPAddr is the loopback address to listen on (default "127.0.0.1:0").
	TCPAddr string
	// UnixSocket, when set, is a path where the API is also served.
	// An existing file at that path is removed first.
	UnixSocket string
	// IDSeed, when non-zero, makes generated IDs deterministic.
	IDSeed uint64
	// OnRequest, when set, is called with every request before it is
	// served (scale benchmarks count requests with it). It must be safe
	// for concurrent use.
	OnRequest func(*http.Request)
}

// Engine is a simulated Docker Engine that is (by default) a swarm manager.
// All methods are safe for concurrent use. Model methods (AddNode, Flap, ...)
// may be called before Start to preload state.
type Engine struct {
	opts Options

	ids *idGen

	mu        sync.RWMutex
	mode      Mode
	clusterID string
	clusterAt time.Time
	selfID    string
	nodes     map[string]*node
	version   uint64 // swarmkit-like store version, bumped on every write
	addrSeq   uint32
	hostSeq   int
	events    []events.Message // sorted by TimeNano, at most opts.EventLimit
	subs      map[*subscriber]struct{}

	done      chan struct{}
	closeOnce sync.Once
	flappers  sync.WaitGroup

	srvMu     sync.Mutex
	started   bool
	srv       *http.Server
	tcpLn     net.Listener
	unixLn    net.Listener
	serveDone sync.WaitGroup

	reqHook func(*http.Request) // tests only; set before Start
}

// New returns an Engine configured by opts. Call Start to serve the API.
func New(opts Options) *Engine {
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	if opts.MinAPIVersion == "" {
		opts.MinAPIVersion = DefaultMinAPIVersion
	}
	if opts.ServerVersion == "" {
		opts.ServerVersion = DefaultServerVersion
	}
	if opts.EventLimit <= 0 {
		opts.EventLimit = DefaultEventLimit
	}
	if opts.TCPAddr == "" {
		opts.TCPAddr = "127.0.0.1:0"
	}
	e := &Engine{
		opts:  opts,
		ids:   newIDGen(opts.IDSeed),
		mode:  opts.Mode,
		nodes: make(map[string]*node),
		subs:  make(map[*subscriber]struct{}),
		done:  make(chan struct{}),
	}
	e.clusterID = opts.ClusterID
	if e.clusterID == "" {
		e.clusterID = e.ids.next()
	}
	now := time.Now().UTC()
	e.clusterAt = now

	self := opts.Self
	if self.Hostname == "" {
		self.Hostname = "sim-manager-1"
	}
	if opts.Mode == ModeManager || self.Role == "" {
		if opts.Mode == ModeManager {
			self.Role = swarm.NodeRoleManager
		} else {
			self.Role = swarm.NodeRoleWorker
		}
	}
	n, err := e.newNodeLocked(self, now)
	if err != nil {
		// Only an invalid Options.Self can get here; fall back to defaults
		// rather than returning a half-built engine.
		n, _ = e.newNodeLocked(NodeSpec{Hostname: "sim-manager-1", Role: self.Role}, now)
	}
	n.leader = n.role == swarm.NodeRoleManager
	e.selfID = n.id
	e.nodes[n.id] = n
	return e
}

// Start begins serving the API on the TCP listener (and the unix socket, if
// configured). It returns once the listeners are bound.
func (e *Engine) Start() error {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	if e.started {
		return errors.New("dockersim: engine already started")
	}
	select {
	case <-e.done:
		return errors.New("dockersim: engine closed")
	default:
	}
	tcpLn, err := net.Listen("tcp", e.opts.TCPAddr)
	if err != nil {
		return fmt.Errorf("dockersim: listen tcp: %w", err)
	}
	var unixLn net.Listener
	if e.opts.UnixSocket != "" {
		_ = os.Remove(e.opts.UnixSocket)
		unixLn, err = net.Listen("unix", e.opts.UnixSocket)
		if err != nil {
			tcpLn.Close()
			return fmt.Errorf("dockersim: listen unix: %w", err)
		}
	}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
	}
	e.tcpLn, e.unixLn = tcpLn, unixLn
	e.started = true
	for _, ln := range []net.Listener{tcpLn, unixLn} {
		if ln == nil {
			continue
		}
		e.serveDone.Add(1)
		go func(ln net.Listener) {
			defer e.serveDone.Done()
			_ = e.srv.Serve(ln)
		}(ln)
	}
	return nil
}

// Host returns the TCP address for client.WithHost, "tcp://127.0.0.1:PORT".
// It is empty before Start.
func (e *Engine) Host() string {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	if e.tcpLn == nil {
		return ""
	}
	return "tcp://" + e.tcpLn.Addr().String()
}

// UnixHost returns "unix:///path" when Options.UnixSocket is set and the
// engine is started, else "".
func (e *Engine) UnixHost() string {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	if e.unixLn == nil {
		return ""
	}
	return "unix://" + e.opts.UnixSocket
}

// Close stops all Flap drivers, ends open event streams, closes the
// listeners and waits for everything to finish. It is idempotent.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		close(e.done)
		e.flappers.Wait()
		e.srvMu.Lock()
		srv := e.srv
		e.srvMu.Unlock()
		if srv != nil {
			_ = srv.Close()
			e.serveDone.Wait()
		}
		if e.opts.UnixSocket != "" && e.unixLn != nil {
			_ = os.Remove(e.opts.UnixSocket)
		}
	})
}

// SetMode switches the engine's swarm role at runtime (e.g. to test a
// manager that gets demoted while the tool is running).
func (e *Engine) SetMode(m Mode) {
	e.mu.Lock()
	e.mode = m
	e.mu.Unlock()
}

// Mode returns the current swarm role.
func (e *Engine) Mode() Mode {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mode
}

// LocalNodeID is the ID of the engine's own node (Options.Self).
func (e *Engine) LocalNodeID() string { return e.selfID }

// ClusterID is the swarm cluster ID reported by /swarm and /info.
func (e *Engine) ClusterID() string { return e.clusterID }

// APIVersion is the API version the engine advertises.
func (e *Engine) APIVersion() string { return e.opts.APIVersion }
