package kubesim

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Start serves the API on a loopback https port (a self-signed
// certificate; Kubeconfig and RESTConfig trust it).
func (s *Server) Start() error {
	if s.srv != nil {
		return errors.New("kubesim: already started")
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	return nil
}

// URL is the server's https URL.
func (s *Server) URL() string { return s.srv.URL }

// Close ends every watch and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	for w := range s.watchers {
		w.close()
		delete(s.watchers, w)
	}
	s.mu.Unlock()
	s.srv.Close()
}

// RESTConfig returns a client config for the server.
func (s *Server) RESTConfig() *rest.Config {
	return &rest.Config{Host: s.srv.URL, BearerToken: s.opts.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.caPEM()}}
}

// Kubeconfig writes a kubeconfig for the server into dir, with one context
// named context, and returns its path.
func (s *Server) Kubeconfig(dir, context string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[context] = &clientcmdapi.Cluster{Server: s.srv.URL, CertificateAuthorityData: s.caPEM()}
	cfg.AuthInfos[context] = &clientcmdapi.AuthInfo{Token: s.opts.Token}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: context, AuthInfo: context}
	cfg.CurrentContext = context
	p := filepath.Join(dir, "kubeconfig-"+context)
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		return "", err
	}
	return p, os.Chmod(p, 0o600)
}

func (s *Server) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// serve routes a request: authentication, then the API subset.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
		return
	}
	if slices.Contains(s.opts.Forbidden, r.URL.Path) {
		writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden,
			fmt.Sprintf("forbidden: User %q cannot list resource at %s", "kubesim", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "the server does not allow this method on the requested resource")
		return
	}
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/version":
		writeJSON(w, version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2-kubesim", Platform: "linux/amd64"})
	case r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/livez":
		w.Write([]byte("ok"))
	case r.URL.Path == "/api/v1/nodes":
		if b, _ := strconv.ParseBool(r.URL.Query().Get("watch")); b {
			s.watchNodes(w, r)
		} else {
			s.listNodes(w, r)
		}
	case len(p) == 4 && p[0] == "api" && p[2] == "nodes":
		s.getNode(w, p[3])
	case r.URL.Path == "/api/v1/events":
		s.listEvents(w, r, "", false)
	case len(p) == 5 && p[0] == "api" && p[2] == "namespaces" && p[4] == "events":
		s.listEvents(w, r, p[3], false)
	case r.URL.Path == "/apis/events.k8s.io/v1/events":
		s.listEvents(w, r, "", true)
	case len(p) == 6 && p[1] == "events.k8s.io" && p[3] == "namespaces" && p[5] == "events":
		s.listEvents(w, r, p[4], true)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
	}
}

func (s *Server) getNode(w http.ResponseWriter, name string) {
	n, ok := s.Node(name)
	if !ok {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("nodes %q not found", name))
		return
	}
	n.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
	writeJSON(w, n)
}

// listNodes answers a Node list, sorted by name, in pages of limit; the
// continue token is the last name of the page.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	limit, cont, err := paging(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		if name > cont {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	list := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"}}
	list.ResourceVersion = strconv.FormatInt(s.rv, 10)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		list.Continue = names[limit-1]
	}
	for _, name := range names {
		list.Items = append(list.Items, *s.nodes[name].DeepCopy())
	}
	s.mu.Unlock()
	writeJSON(w, list)
}

// listEvents answers an event list in namespace ("" for all), filtered by
// the field selector as the API server's event fields allow; v1 answers in
// the events.k8s.io/v1 shape.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, namespace string, v1 bool) {
	sel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector"))
	if err == nil {
		err = checkFields(sel, v1)
	}
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	limit, cont, err := paging(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	start, _ := strconv.Atoi(cont)
	s.mu.Lock()
	rv := strconv.FormatInt(s.rv, 10)
	// Match by index and copy only the page: copying every match for
	// every page made a paged list of n events cost O(n²/limit).
	var hits []int
	for i := range s.events {
		e := &s.events[i]
		if (namespace == "" || e.Namespace == namespace) && sel.Matches(eventFields(e, v1)) {
			hits = append(hits, i)
		}
	}
	hits, next := page(hits, start, limit)
	matched := make([]corev1.Event, len(hits))
	for j, i := range hits {
		matched[j] = s.events[i]
	}
	s.mu.Unlock()
	if !v1 {
		writeJSON(w, corev1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"},
			ListMeta: metav1.ListMeta{ResourceVersion: rv, Continue: next}, Items: matched})
		return
	}
	list := eventsv1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "EventList"},
		ListMeta: metav1.ListMeta{ResourceVersion: rv, Continue: next}}
	for i := range matched {
		list.Items = append(list.Items, toEventsV1(&matched[i]))
	}
	writeJSON(w, list)
}

func page[T any](items []T, start, limit int) ([]T, string) {
	if start > len(items) {
		start = len(items)
	}
	items = items[start:]
	if limit > 0 && len(items) > limit {
		return items[:limit], strconv.Itoa(start + limit)
	}
	return items, ""
}

func paging(r *http.Request) (limit int, cont string, err error) {
	q := r.URL.Query()
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 0 {
			return 0, "", fmt.Errorf("invalid limit %q", l)
		}
	}
	return limit, q.Get("continue"), nil
}

// eventFields are the selectable fields of an event, as the API server
// names them for core/v1 and for events.k8s.io/v1.
func eventFields(e *corev1.Event, v1 bool) fields.Set {
	prefix := "involvedObject."
	if v1 {
		prefix = "regarding."
	}
	return fields.Set{
		"metadata.name": e.Name, "metadata.namespace": e.Namespace,
		prefix + "kind": e.InvolvedObject.Kind, prefix + "name": e.InvolvedObject.Name,
		prefix + "namespace": e.InvolvedObject.Namespace, prefix + "uid": string(e.InvolvedObject.UID),
		"reason": e.Reason, "type": e.Type, "source": e.Source.Component, "reportingComponent": e.ReportingController,
	}
}

func checkFields(sel fields.Selector, v1 bool) error {
	allowed := eventFields(&corev1.Event{}, v1)
	for _, req := range sel.Requirements() {
		if _, ok := allowed[req.Field]; !ok {
			return fmt.Errorf("field label not supported: %s", req.Field)
		}
	}
	return nil
}

func toEventsV1(e *corev1.Event) eventsv1.Event {
	return eventsv1.Event{
		TypeMeta: metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"}, ObjectMeta: e.ObjectMeta,
		EventTime: e.EventTime, ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
		Action: e.Action, Reason: e.Reason, Regarding: e.InvolvedObject, Note: e.Message, Type: e.Type,
		DeprecatedSource: e.Source, DeprecatedFirstTimestamp: e.FirstTimestamp,
		DeprecatedLastTimestamp: e.LastTimestamp, DeprecatedCount: e.Count,
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", runtime.ContentTypeJSON)
	_ = json.NewEncoder(w).Encode(v)
}

func statusObject(code int, reason metav1.StatusReason, msg string) metav1.Status {
	return metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)}
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", runtime.ContentTypeJSON)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(statusObject(code, reason, msg))
}

// watchEvent is a watch stream's frame, as metav1.WatchEvent encodes it.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

// timeoutOf reads timeoutSeconds; default 30 minutes (the server's
// --min-request-timeout).
func timeoutOf(r *http.Request) time.Duration {
	if n, err := strconv.Atoi(r.URL.Query().Get("timeoutSeconds")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 30 * time.Minute
}

// jsonLine writes v as one line of JSON.
func jsonLine(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }
