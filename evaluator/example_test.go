package evaluator_test

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/evaluator"
)

// A webhook receiver checks each delivery before trusting it.
func ExampleVerifySignature() {
	secret := []byte("tenant-secret")
	body := []byte(`{"id":"v-1","action":"retract"}`)
	now := time.Unix(1_800_000_000, 0)

	// What the evaluator sends:
	h := http.Header{}
	h.Set(evaluator.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(evaluator.HeaderSignature, evaluator.Sign(secret, now.Unix(), body))

	fmt.Println(evaluator.VerifySignature(secret, h, body, evaluator.DefaultSignatureTolerance, now))
	fmt.Println(evaluator.VerifySignature(secret, h, []byte(`{"id":"v-1","action":"flag"}`), evaluator.DefaultSignatureTolerance, now))
	// Output:
	// <nil>
	// bad webhook signature: signature mismatch
}
