package bench_test

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/bench"
)

// The same seed always gives the same conversation traffic.
func ExampleNewGenerator() {
	g, err := bench.NewGenerator(2, bench.Mix{Advisory: 1, Gaming: 1, RuleRate: 0.3, PIIRate: 0.3}, bench.WithTenant("acme"), bench.WithConversations(2))
	if err != nil {
		panic(err)
	}
	for range 6 {
		m := g.Next()
		fmt.Printf("%s %s (%s) %v: %s\n", m.ID, m.Sender.Role, m.Channel, m.Labels, m.Text)
	}
	// Output:
	// sim-1 moderator (discord) []: lol that clutch was insane
	// sim-2 advisor (symphony) [rule:offchannel]: Let's move this to Signal, text me there and I'll send the details.
	// sim-3 player (discord) []: anyone up for ranked on Dust II tonight?
	// sim-4 client (symphony) [rule:complaint]: I want to file a formal complaint, nobody explained the fees on MDLN to me.
	// sim-5 advisor (symphony) []: Morning Noah, quick update on your portfolio before the open.
	// sim-6 client (symphony) [pii:card]: card number is 5460925032694168
}

// Run drives generated traffic into a running Vigil and reports what it
// measured.
func ExampleRun() {
	res, err := bench.Run(context.Background(), bench.RunConfig{
		Transport: bench.TransportWS,
		Target:    "http://127.0.0.1:8080",
		Token:     "my-token",
		Tenant:    "acme",
		Rate:      200,
		Sessions:  8,
		Duration:  30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.0f msgs/s, ack p99 %v, verdict p99 %v, errors %v\n",
		res.Rate, res.AckLatency.P99, res.VerdictLatency.P99, res.Errors)
}
