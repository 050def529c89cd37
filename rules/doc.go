// Package rules is Vigil's rule-file format and rule engine: it parses YAML
// rule files, type-checks their CEL expressions in one shared environment,
// runs their inline tests and evaluates a compiled [Set] against one message
// and its conversation context.
//
// In the data flow ingest → pii → bus → evaluator → warehouse, rules sits
// beside the evaluator: the evaluator loads a [Set] (from a directory or a
// KV bucket, via [Load] or [LoadFiles]), calls [Set.Eval] for every message
// and turns each [Match] into a verdict stamped with [Set.Version]. This
// package has no NATS, no ClickHouse and no wall clock; `vigil rules lint`,
// `vigil rules test` and `vigil rules explain` only print what it reports.
//
// A rule file holds a list of rules:
//
//	rules:
//	  - id: finance.offchannel.request
//	    description: Staff asks a client to move to an unmonitored channel.
//	    severity: high
//	    tier: 1
//	    action: escalate
//	    tags: [SEC-17a-4, FINRA-4511]
//	    when:
//	      keywords: [whatsapp, signal, "text me"]
//	    expr: contains_any(msg.text, ["whatsapp", "signal", "text me"])
//	    tests:
//	      - name: asks to move to whatsapp
//	        message: {text: "ping me on WhatsApp", role: advisor}
//	        fires: true
//
// Every problem of every file is reported at once as [CompileErrors], each a
// [*CompileError] positioned at file:line:col of the YAML file, and a ruleset
// that fails to compile or whose inline tests fail is rejected as a whole
// ([ErrRulesetRejected]). docs/rules.md is the reference of the format and
// of the CEL functions.
package rules
