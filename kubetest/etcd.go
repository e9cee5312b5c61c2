package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// CompactEtcd compacts etcd's history up to its current revision, as the
// API server does every five minutes: a watch from an older
// resourceVersion is then answered 410 Gone (Expired), and the client must
// list again.
func (s *Server) CompactEtcd(ctx context.Context) error {
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// A range over one key returns the store's current revision.
	if err := s.etcdCall(ctx, "/v3/kv/range", map[string]any{"key": "AA=="}, &rng); err != nil {
		return err
	}
	rev, err := strconv.ParseInt(rng.Header.Revision, 10, 64)
	if err != nil {
		return fmt.Errorf("kubetest: etcd revision %q: %w", rng.Header.Revision, err)
	}
	return s.etcdCall(ctx, "/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, nil)
}

// etcdCall posts req to etcd's JSON gateway and decodes the answer into out.
func (s *Server) etcdCall(ctx context.Context, path string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.EtcdURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return fmt.Errorf("kubetest: etcd %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubetest: etcd %s: %s", path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
