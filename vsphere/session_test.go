package vsphere

import (
	"context"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25"
)

// TestDatacentersOnce: a datacenter named twice (or by name and by path) is
// one root; two roots over the same datacenter inventoried every VM twice,
// each then reported as its own duplicate-bios-uuid and duplicate-mac.
func TestDatacentersOnce(t *testing.T) {
	simTest(t, simulatorVPXTwoDCs(), func(ctx context.Context, c *vim25.Client) {
		conn := &Conn{Client: c}
		refs, err := conn.Datacenters(ctx, []string{"DC0", "/DC0", "DC1", "DC0"})
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 2 || refs[0] == refs[1] {
			t.Errorf("roots = %v, want DC0 and DC1 once each", refs)
		}
		if _, err := conn.Datacenters(ctx, []string{"DC9"}); err == nil || !strings.Contains(err.Error(), `"DC9" not found (fix: one of DC0, DC1)`) {
			t.Errorf("unknown datacenter: %v", err)
		}
	})
}
