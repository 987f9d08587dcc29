package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// claimAll is a sweeper's loop: read what is due, claim each, and on success
// record the end as the holder. It returns the ids it claimed.
func claimAll(ctx context.Context, s Store, token string, now time.Time) ([]string, error) {
	due, err := s.Due(ctx, now, 0)
	if err != nil {
		return nil, err
	}
	var won []string
	for _, g := range due {
		err := s.Claim(ctx, g, token, now, time.Hour)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return won, err
		}
		won = append(won, g.ID)
		if err := g.MarkRevoked(grant.ReasonExpired, grant.ActorSweeper, now); err != nil {
			return won, err
		}
		if err := s.UpdateGrant(ctx, g, Entry{Type: EntryRevoked, At: now, Actor: grant.ActorSweeper, Detail: token}); err != nil {
			return won, fmt.Errorf("holder's update of %s: %w", g.ID, err)
		}
	}
	return won, nil
}

func seedDue(t testing.TB, s Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustCreate(t, s, newGrant(gid(i), fmt.Sprintf("c%d", i%3), "r", "m"+gid(i), "INC-1", time.Hour))
	}
}

// checkClaimedOnce checks every grant was claimed and revoked by exactly one
// claimer and that its history shows exactly one revoke.
func checkClaimedOnce(t *testing.T, s Store, n int, won map[string][]string) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id := gid(i)
		if len(won[id]) != 1 {
			t.Errorf("grant %s claimed by %v, want exactly one claimer", id, won[id])
		}
		g, err := s.GetGrant(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != grant.StatusRevoked {
			t.Errorf("grant %s is %s, want revoked", id, g.Status)
		}
		h, _ := s.History(ctx, id)
		revokes := 0
		for _, e := range h {
			if e.Type == EntryRevoked {
				revokes++
			}
		}
		if revokes != 1 {
			t.Errorf("grant %s has %d revoked entries, want 1", id, revokes)
		}
	}
}

func TestClaimRaceTwoStores(t *testing.T) {
	_, path := openTemp(t)
	stores := []Store{openPath(t, path), openPath(t, path)}
	const n, workers = 60, 8
	seedDue(t, stores[0], n)
	now := t0.Add(2 * time.Hour)

	var (
		mu      sync.Mutex
		won     = map[string][]string{}
		perWork = map[string]int{}
		wg      sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("worker-%d", w)
			ids, err := claimAll(context.Background(), stores[w%2], token, now)
			if err != nil {
				t.Errorf("%s: %v", token, err)
			}
			mu.Lock()
			for _, id := range ids {
				won[id] = append(won[id], token)
				perWork[token]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("grants claimed per worker: %v", perWork)
	checkClaimedOnce(t, stores[0], n, won)
}

// TestClaimRaceProcesses runs the claim loop in separate OS processes (this
// test binary, re-executed) on one ledger file.
func TestClaimRaceProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s, path := openTemp(t)
	const n, procs = 60, 3
	seedDue(t, s, n)

	// The children open the ledger, then wait for the go file, so that they
	// really race for the same grants.
	goFile := path + ".go"
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for p := range cmds {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "EVENTACCESS_TEST_CLAIM_LEDGER="+path, "EVENTACCESS_TEST_CLAIM_GO="+goFile, fmt.Sprintf("EVENTACCESS_TEST_CLAIM_TOKEN=proc-%d", p))
		outs[p] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[p], outs[p]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[p] = cmd
	}
	time.Sleep(200 * time.Millisecond) // let the children open the ledger
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	won := map[string][]string{}
	perProc := map[string]int{}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", p, err, outs[p])
		}
		for _, line := range strings.Split(outs[p].String(), "\n") {
			if id, ok := strings.CutPrefix(line, "CLAIMED "); ok {
				won[id] = append(won[id], fmt.Sprintf("proc-%d", p))
				perProc[fmt.Sprintf("proc-%d", p)]++
			}
		}
	}
	t.Logf("grants claimed per process: %v", perProc)
	checkClaimedOnce(t, s, n, won)
}

// TestMain runs this test binary as the child of TestClaimRaceProcesses when
// asked to by the environment, and as the test suite otherwise.
func TestMain(m *testing.M) {
	if path := os.Getenv("EVENTACCESS_TEST_CLAIM_LEDGER"); path != "" {
		if err := claimHelperProcess(path); err != nil {
			fmt.Fprintln(os.Stderr, "claim helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// claimHelperProcess is the child of TestClaimRaceProcesses.
func claimHelperProcess(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	for deadline := time.After(10 * time.Second); ; {
		if _, err := os.Stat(os.Getenv("EVENTACCESS_TEST_CLAIM_GO")); err == nil {
			break
		}
		select {
		case <-deadline:
			return fmt.Errorf("no go signal from the parent")
		case <-time.After(time.Millisecond):
		}
	}
	ids, err := claimAll(ctx, s, os.Getenv("EVENTACCESS_TEST_CLAIM_TOKEN"), t0.Add(2*time.Hour))
	for _, id := range ids {
		fmt.Printf("CLAIMED %s\n", id)
	}
	return err
}
