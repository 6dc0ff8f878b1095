package integrations

import (
	"math"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/gqlerr"
)

// Bounds of the per-integration write budget (issue 12). Generous on purpose:
// they only keep nonsense out (a zero or negative rate would stop every
// write; a huge bucket would disable the budget without saying so).
const (
	maxWriteBudgetSize   = 100000
	minWriteBudgetRefill = 0.01
	maxWriteBudgetRefill = 10000
)

// setWriteBudget applies the writeBudget input: reset clears both values (the
// defaults apply again; giving values as well is refused), otherwise each given value replaces the stored one.
// Nothing is stored before every value is checked.
func setWriteBudget(upd *ent.IntegrationUpdateOne, in *model.WriteBudgetInput) error {
	if in.Reset != nil && *in.Reset {
		if in.Size != nil || in.RefillPerSecond != nil {
			return gqlerr.BadInput("writeBudget.reset", "reset cannot be combined with size or refillPerSecond")
		}
		upd.ClearWriteBudgetSize().ClearWriteBudgetRefillPerSecond()
		return nil
	}
	if in.Size != nil && (*in.Size < 1 || *in.Size > maxWriteBudgetSize) {
		return gqlerr.BadInput("writeBudget.size", "must be between 1 and %d", maxWriteBudgetSize)
	}
	if r := in.RefillPerSecond; r != nil && (math.IsNaN(*r) || *r < minWriteBudgetRefill || *r > maxWriteBudgetRefill) {
		return gqlerr.BadInput("writeBudget.refillPerSecond", "must be between %g and %g", minWriteBudgetRefill, float64(maxWriteBudgetRefill))
	}
	if in.Size != nil {
		upd.SetWriteBudgetSize(*in.Size)
	}
	if in.RefillPerSecond != nil {
		upd.SetWriteBudgetRefillPerSecond(*in.RefillPerSecond)
	}
	return nil
}
