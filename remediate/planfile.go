package remediate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DecodePlan reads a saved plan (the JSON `remediate -out FILE` writes): it
// must be a plan of PlanVersion with an ID and a fingerprint, and its
// settings are normalized and validated. Errors are one line, without the
// file name (the caller adds it). A decoded plan is still only a request:
// Stale decides whether it may be applied now.
func DecodePlan(b []byte) (Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("not a vmreconcile plan: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if p.Version != PlanVersion || p.ID == "" || p.Fingerprint.Digest == "" {
		return Plan{}, fmt.Errorf("not a vmreconcile plan of version %d (fix: compute a new plan with -out)", PlanVersion)
	}
	if err := p.Settings.Normalize(); err != nil {
		return Plan{}, err
	}
	return p, nil
}
