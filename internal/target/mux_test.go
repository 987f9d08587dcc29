package target

import (
	"context"
	"strings"
	"testing"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// recorder is a target without batch support that records what it was asked.
type recorder struct{ revoked []string }

func (r *recorder) Check(context.Context, grant.Target) error { return nil }
func (r *recorder) Grant(context.Context, grant.Target) error { return nil }
func (r *recorder) Revoke(_ context.Context, s grant.Target) error {
	r.revoked = append(r.revoked, s.Key())
	return nil
}
func (r *recorder) Inspect(_ context.Context, s grant.Target) (Observation, error) {
	return Observation{State: Absent, Evidence: s.Key()}, nil
}
func (r *recorder) Close() error { return nil }

func TestMuxBatchesPerKind(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	m := Mux{grant.TargetPostgreSQL: rec}
	pg := func(role string) grant.Target {
		return grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "c", Role: role, Member: "m"}}
	}
	specs := []grant.Target{pg("a"), {}, pg("b")}

	errs := m.RevokeMany(ctx, specs)
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "no target driver") {
		t.Fatalf("errs = %v", errs)
	}
	if strings.Join(rec.revoked, ",") != pg("a").Key()+","+pg("b").Key() {
		t.Fatalf("revoked %v", rec.revoked)
	}
	obs, errs := m.InspectMany(ctx, specs)
	if errs[0] != nil || errs[1] == nil || obs[2].Evidence != pg("b").Key() || obs[0].Evidence != pg("a").Key() {
		t.Fatalf("inspect: %v %v", obs, errs)
	}
	if err := m.Narrow(ctx, pg("a")); err == nil || !strings.Contains(err.Error(), "cannot narrow") {
		t.Fatalf("narrow on a target without support: %v", err)
	}
}
