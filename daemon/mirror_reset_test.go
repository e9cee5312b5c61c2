package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// TestMirrorReviewNotSyncedAuditResetsMirrorSession: an audit that fails only
// because the mirror is still syncing (ErrMirrorNotSynced) is a vCenter
// SourceError, so Sources.Failed resets the vCenter session, which is the
// session the mirror is syncing on: the sync dies and starts over. With a
// sync slower than AuditTimeout every audit kills the next sync.
func TestMirrorReviewNotSyncedAuditResetsMirrorSession(t *testing.T) {
	model, _, vcCfg := vcsimModel(t)
	model.DelayConfig.MethodDelay = map[string]int{"WaitForUpdatesEx": 1500} // a slow initial sync
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	src := audit.NewSources(cfg)
	t.Cleanup(src.Close)
	v := src.VCenters()[0]
	ctx := t.Context()
	vc, err := v.Get(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m, err := vsphere.NewMirror(vc.Roots, vsphere.MirrorOptions{MaxWait: time.Second, CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v.SetMirror(m)
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx, vc.Client) }()

	// An audit with a short deadline fails on the mirror, as the daemon's does.
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = audit.Run(actx, src, audit.Options{})
	cancel()
	if !errors.Is(err, vsphere.ErrMirrorNotSynced) {
		t.Fatalf("audit = %v, want ErrMirrorNotSynced", err)
	}
	src.Failed(err) // what Daemon.audit -> sourceFailed does

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if _, err := m.Snapshot(sctx); err != nil {
		select {
		case rerr := <-runErr:
			t.Fatalf("the mirror's sync died after the audit reset its session: Run = %v", rerr)
		default:
			t.Fatalf("mirror never synced: %v", err)
		}
	}
}
