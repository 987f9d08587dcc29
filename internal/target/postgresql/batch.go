package postgresql

import (
	"context"
	"errors"
	"sync"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/jackc/pgx/v5"
)

// group is the specs of one connection, with their indices in the caller's slice.
type group struct {
	idx   []int
	specs []grant.PostgreSQLTarget
}

// groupSpecs validates specs and groups them by connection; invalid specs get
// their error in errs.
func groupSpecs(specs []grant.Target, errs []error) map[string]*group {
	groups := map[string]*group{}
	for i, t := range specs {
		p, err := spec(t)
		if err != nil {
			errs[i] = err
			continue
		}
		g := groups[p.Connection]
		if g == nil {
			g = &group{}
			groups[p.Connection] = g
		}
		g.idx = append(g.idx, i)
		g.specs = append(g.specs, p)
	}
	return groups
}

// eachChunk runs f on every chunk of every connection's group: connections in
// parallel, the chunks of one connection in turn. f gets the chunk's specs and
// their indices in the caller's slice.
func (d *Driver) eachChunk(specs []grant.Target, errs []error, f func(c *conn, idx []int, ps []grant.PostgreSQLTarget)) {
	var wg sync.WaitGroup
	for name, g := range groupSpecs(specs, errs) {
		c, err := d.conn(name)
		if err != nil {
			for _, i := range g.idx {
				errs[i] = err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := 0; lo < len(g.idx); lo += d.batchSize {
				hi := min(lo+d.batchSize, len(g.idx))
				f(c, g.idx[lo:hi], g.specs[lo:hi])
			}
		}()
	}
	wg.Wait()
}

// InspectMany inspects many memberships: one query per connection and chunk.
// Results are index-aligned with specs.
func (d *Driver) InspectMany(ctx context.Context, specs []grant.Target) ([]target.Observation, []error) {
	obs := make([]target.Observation, len(specs))
	errs := make([]error, len(specs))
	d.eachChunk(specs, errs, func(c *conn, idx []int, ps []grant.PostgreSQLTarget) {
		rows, err := c.inspect(ctx, ps)
		for j, i := range idx {
			if err != nil {
				errs[i] = err
				continue
			}
			obs[i] = observe(c.name, ps[j], rows[j])
		}
	})
	return obs, errs
}

// RevokeMany revokes many memberships in few round trips per connection and
// chunk: one inspection, one pipelined batch of REVOKE statements for the
// memberships present, and one query that ends the sessions of members whose
// spec asks for it. Absent memberships, roles and members count as revoked.
// If the batch fails (it runs as one implicit transaction), the chunk's
// memberships are revoked one by one so each gets its own result.
func (d *Driver) RevokeMany(ctx context.Context, specs []grant.Target) []error {
	errs := make([]error, len(specs))
	d.eachChunk(specs, errs, func(c *conn, idx []int, ps []grant.PostgreSQLTarget) {
		setAll := func(err error) {
			for _, i := range idx {
				errs[i] = err
			}
		}
		rows, err := c.inspect(ctx, ps)
		if err != nil {
			setAll(err)
			return
		}
		mg := false
		for _, r := range rows {
			if r.found {
				if mg, err = c.isMultiGrantor(ctx); err != nil {
					setAll(err)
					return
				}
				break
			}
		}

		// One set of statements per distinct membership.
		type pair struct{ role, member string }
		type job struct {
			p     grant.PostgreSQLTarget
			stmts []string
			idx   []int
		}
		var jobs []*job
		byPair := map[pair]*job{}
		var terminate []string
		termIdx := map[string][]int{}
		for j, p := range ps {
			r := rows[j]
			if p.TerminateSessions && r.memberExists {
				if _, ok := termIdx[p.Member]; !ok {
					terminate = append(terminate, p.Member)
				}
				termIdx[p.Member] = append(termIdx[p.Member], idx[j])
			}
			if !r.found {
				continue
			}
			k := pair{p.Role, p.Member}
			if jb, ok := byPair[k]; ok {
				jb.idx = append(jb.idx, idx[j])
				continue
			}
			jb := &job{p: p, stmts: revokeStatements(p, r, mg), idx: []int{idx[j]}}
			byPair[k] = jb
			jobs = append(jobs, jb)
		}

		if len(jobs) > 0 {
			b := &pgx.Batch{}
			for _, jb := range jobs {
				for _, s := range jb.stmts {
					b.Queue(s)
				}
			}
			berr := c.do(ctx, "revoke batch", func(ctx context.Context) error {
				return c.pool.SendBatch(ctx, b).Close()
			})
			if berr != nil {
				if errors.Is(berr, ErrCannotConnect) || ctx.Err() != nil {
					for _, jb := range jobs {
						for _, i := range jb.idx {
							errs[i] = berr
						}
					}
				} else {
					for _, jb := range jobs {
						err := c.revokeOne(ctx, jb.p, jb.stmts)
						for _, i := range jb.idx {
							errs[i] = err
						}
					}
				}
			}
		}

		if len(terminate) > 0 {
			if err := c.terminate(ctx, terminate); err != nil {
				for _, m := range terminate {
					for _, i := range termIdx[m] {
						if errs[i] == nil {
							errs[i] = err
						}
					}
				}
			}
		}
	})
	return errs
}
