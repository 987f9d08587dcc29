package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

func TestClaimManyAndUpdateMany(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	other := openPath(t, path) // a second process's handle
	var gs []*grant.Grant
	for i := 0; i < 4; i++ {
		g := newGrant(gid(i), "main", "r", "m"+gid(i), "INC-1", time.Hour)
		mustCreate(t, s, g)
		gs = append(gs, g)
	}
	now := t0.Add(2 * time.Hour)

	// Someone else holds grant 1; grant 2 changed since it was read.
	g1, _ := other.GetGrant(ctx, gs[1].ID)
	if err := other.Claim(ctx, g1, "other", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	g2, _ := other.GetGrant(ctx, gs[2].ID)
	g2.Owner = "bob@example.com"
	if err := other.UpdateGrant(ctx, g2); err != nil {
		t.Fatal(err)
	}

	errs, err := s.ClaimMany(ctx, gs, "me", now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, ErrConflict, ErrConflict, nil} {
		if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
			t.Fatalf("ClaimMany errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	if gs[0].Version != 2 || gs[1].Version != 1 || gs[3].Version != 2 {
		t.Fatalf("versions after claim: %d %d %d", gs[0].Version, gs[1].Version, gs[3].Version)
	}

	// Record the two claimed grants as revoked; a stale one fails alone.
	for _, g := range gs {
		if err := g.MarkRevoked(grant.ReasonExpired, grant.ActorSweeper, now); err != nil {
			t.Fatal(err)
		}
	}
	entries := make([][]Entry, len(gs))
	for i := range gs {
		entries[i] = []Entry{{Type: EntryRevoked, At: now, Actor: grant.ActorSweeper, Detail: "batch"}}
	}
	errs, err = s.UpdateMany(ctx, gs, entries)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[3] != nil || !errors.Is(errs[1], ErrConflict) || !errors.Is(errs[2], ErrConflict) {
		t.Fatalf("UpdateMany errs = %v", errs)
	}
	if entries[0][0].Seq == 0 || entries[1][0].Seq != 0 {
		t.Fatalf("sequence numbers: written %d, not written %d", entries[0][0].Seq, entries[1][0].Seq)
	}
	for i, wantStatus := range []grant.Status{grant.StatusRevoked, grant.StatusActive, grant.StatusActive, grant.StatusRevoked} {
		got, err := other.GetGrant(ctx, gs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != wantStatus {
			t.Fatalf("grant %d status %s, want %s", i, got.Status, wantStatus)
		}
		h, err := other.History(ctx, gs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		revoked := 0
		for _, e := range h {
			if e.Type == EntryRevoked {
				revoked++
			}
		}
		if (wantStatus == grant.StatusRevoked) != (revoked == 1) || revoked > 1 {
			t.Fatalf("grant %d history %v", i, h)
		}
	}
	// The batch write released the claims: the grants can be claimed again at once.
	g0, _ := other.GetGrant(ctx, gs[0].ID)
	if err := other.Claim(ctx, g0, "again", now, time.Minute); err != nil {
		t.Fatalf("claim not released by UpdateMany: %v", err)
	}
	if _, err := s.UpdateMany(ctx, gs, entries[:1]); err == nil {
		t.Fatal("mismatched entry lists accepted")
	}
	if _, err := s.ClaimMany(ctx, gs, "", now, time.Minute); err == nil {
		t.Fatal("empty token accepted")
	}
}
