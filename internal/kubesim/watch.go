package kubesim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// watcher is one open Node watch.
type watcher struct {
	ch      chan change
	done    chan struct{}
	once    sync.Once
	expired bool // set before done is closed
}

func (w *watcher) close() { w.once.Do(func() { close(w.done) }) }

func (w *watcher) expire() {
	w.once.Do(func() {
		w.expired = true
		close(w.done)
	})
}

// watcherBuffer is how far a watcher may fall behind before its watch is
// ended (the API server ends the watches of clients that cannot keep up).
const watcherBuffer = 1024

// publishLocked records a Node change and hands it to every watcher.
func (s *Server) publishLocked(c change) {
	s.history = append(s.history, c)
	if over := len(s.history) - s.opts.WatchHistory; over > 0 {
		s.compacted = s.history[over-1].rv
		s.history = slices.Delete(s.history, 0, over)
	}
	for w := range s.watchers {
		select {
		case w.ch <- c:
		default:
			w.close()
			delete(s.watchers, w)
		}
	}
}

// watchNodes streams Node changes after the request's resourceVersion (or,
// without one, every current Node as ADDED first), as newline-delimited
// JSON watch events, until timeoutSeconds, the client leaves, or the
// history it needs is gone (an ERROR event with 410 Expired, as the API
// server's watch cache sends it).
func (s *Server) watchNodes(w http.ResponseWriter, r *http.Request) {
	rvParam := r.URL.Query().Get("resourceVersion")
	s.mu.Lock()
	var initial []change
	if rvParam == "" || rvParam == "0" {
		names := make([]string, 0, len(s.nodes))
		for name := range s.nodes {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			initial = append(initial, change{rv: s.rv, typ: watch.Added, node: *s.nodes[name].DeepCopy()})
		}
	} else {
		rv, err := strconv.ParseInt(rvParam, 10, 64)
		if err != nil {
			s.mu.Unlock()
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("invalid resource version %q", rvParam))
			return
		}
		if rv < s.compacted {
			s.mu.Unlock()
			s.streamHeader(w)
			s.send(w, watchEvent{Type: watch.Error, Object: statusObject(http.StatusGone, metav1.StatusReasonExpired,
				fmt.Sprintf("too old resource version: %d (%d)", rv, s.compacted))})
			return
		}
		for _, c := range s.history {
			if c.rv > rv {
				initial = append(initial, c)
			}
		}
	}
	wt := &watcher{ch: make(chan change, watcherBuffer), done: make(chan struct{})}
	s.watchers[wt] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, wt)
		s.mu.Unlock()
	}()
	s.follow(w, r, wt, initial)
}

func (s *Server) follow(w http.ResponseWriter, r *http.Request, wt *watcher, initial []change) {
	s.streamHeader(w)
	for _, c := range initial {
		if !s.send(w, nodeFrame(c)) {
			return
		}
	}
	timeout := time.NewTimer(timeoutOf(r))
	defer timeout.Stop()
	for {
		select {
		case c := <-wt.ch:
			if !s.send(w, nodeFrame(c)) {
				return
			}
		case <-wt.done:
			if wt.expired {
				s.send(w, watchEvent{Type: watch.Error, Object: statusObject(http.StatusGone, metav1.StatusReasonExpired,
					"too old resource version: the history was compacted")})
			}
			return
		case <-timeout.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func nodeFrame(c change) watchEvent {
	n := c.node
	n.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
	return watchEvent{Type: c.typ, Object: n}
}

func (s *Server) streamHeader(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// send writes one frame and flushes it; false when the client is gone.
func (s *Server) send(w http.ResponseWriter, ev watchEvent) bool {
	if err := jsonLine(w, ev); err != nil {
		return false
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}
