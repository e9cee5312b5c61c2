package vsphere

import (
	"context"
	"fmt"
	"time"

	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// DefaultPageSize is the MaxObjects asked of RetrievePropertiesEx when the
// options leave it zero. vCenter may return fewer per page; 1000 keeps each
// SOAP response to a few megabytes even with full device lists.
const DefaultPageSize = 1000

// cleanupTimeout bounds the best-effort calls that free server-side state
// (views, collectors, retrieve tokens) after the caller's context is done.
const cleanupTimeout = 10 * time.Second

// cleanupContext returns a context for freeing server-side state that still
// works when ctx was cancelled (the usual reason we are cleaning up early).
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// createView creates a recursive ContainerView of kinds under root. The
// returned func destroys it; vCenter would otherwise keep it until the session
// ends, and long-running daemons keep their sessions.
func createView(ctx context.Context, c *vim25.Client, root types.ManagedObjectReference, kinds []string) (*view.ContainerView, func(), error) {
	v, err := view.NewManager(c).CreateContainerView(ctx, root, kinds, true)
	if err != nil {
		return nil, nil, fmt.Errorf("create container view of %s on %s: %w", kinds, root, err)
	}
	destroy := func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_ = v.Destroy(cctx)
	}
	return v, destroy, nil
}

// viewObjectSpec selects every object of a ContainerView, not the view itself.
func viewObjectSpec(v types.ManagedObjectReference) types.ObjectSpec {
	return types.ObjectSpec{
		Obj:  v,
		Skip: types.NewBool(true),
		SelectSet: []types.BaseSelectionSpec{
			&types.TraversalSpec{Type: "ContainerView", Path: "view"},
		},
	}
}

// collectPages runs one RetrievePropertiesEx and follows its continuation
// tokens, handing each page to fn as it arrives so no more than one page is
// held at a time. If fn or a call fails, the pending result set is cancelled
// so vCenter can free it.
func collectPages(ctx context.Context, c *vim25.Client, spec types.PropertyFilterSpec, pageSize int32, fn func([]types.ObjectContent) error) error {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pc := c.ServiceContent.PropertyCollector

	res, err := methods.RetrievePropertiesEx(ctx, c, &types.RetrievePropertiesEx{
		This:    pc,
		SpecSet: []types.PropertyFilterSpec{spec},
		Options: types.RetrieveOptions{MaxObjects: pageSize},
	})
	if err != nil {
		return fmt.Errorf("retrieve properties: %w", err)
	}
	if res.Returnval == nil { // nothing matched
		return nil
	}
	objects, token := res.Returnval.Objects, res.Returnval.Token

	for {
		if err := fn(objects); err != nil {
			cancelRetrieve(ctx, c, token)
			return err
		}
		if token == "" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			cancelRetrieve(ctx, c, token)
			return err
		}
		next, err := methods.ContinueRetrievePropertiesEx(ctx, c, &types.ContinueRetrievePropertiesEx{This: pc, Token: token})
		if err != nil {
			cancelRetrieve(ctx, c, token)
			return fmt.Errorf("continue retrieve properties: %w", err)
		}
		objects, token = next.Returnval.Objects, next.Returnval.Token
	}
}

// cancelRetrieve discards the rest of a paged result set, best effort.
func cancelRetrieve(ctx context.Context, c *vim25.Client, token string) {
	if token == "" {
		return
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	_, _ = methods.CancelRetrievePropertiesEx(cctx, c, &types.CancelRetrievePropertiesEx{
		This:  c.ServiceContent.PropertyCollector,
		Token: token,
	})
}
