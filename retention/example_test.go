package retention_test

import (
	"errors"
	"fmt"

	"github.com/vigilhq/vigil/retention"
)

func ExampleLookupClass() {
	for _, name := range []string{retention.ClassSEC17a4, retention.ClassMiFIDII, retention.ClassGDPRMin, "sox-404"} {
		c, err := retention.LookupClass(name)
		if errors.Is(err, retention.ErrUnknownPolicy) {
			fmt.Printf("%s: unknown\n", name)
			continue
		}
		fmt.Printf("%s: keep %d days (max %d), legal duty %v\n", c.Name, c.DefaultKeepDays, c.MaxKeepDays, c.Duty)
	}
	// Output:
	// sec-17a-4: keep 2192 days (max 0), legal duty true
	// mifid-ii: keep 1827 days (max 2557), legal duty true
	// gdpr-minimization: keep 0 days (max 0), legal duty false
	// sox-404: unknown
}
