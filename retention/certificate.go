package retention

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Outcomes of an erasure request ([Certificate.Outcome], erasures.outcome).
const (
	// OutcomeErased: the subject's key was shredded and their messages and
	// verdicts deleted from ClickHouse and the MESSAGES stream.
	OutcomeErased = "erased"
	// OutcomeRestricted: a retention duty applies; detokenization is
	// blocked, the basis and deletion date are recorded, and whatever no
	// duty keeps was deleted.
	OutcomeRestricted = "restricted"
	// OutcomeInProgress is recorded before anything is changed, with the
	// plan, so a crash is completed by running the request again.
	OutcomeInProgress = "in_progress"
)

// CertificateVersion is the version of the certificate's JSON layout.
const CertificateVersion = 1

// Certificate is what an erasure request found and did, and why. It names
// the subject only by its keyed hash.
type Certificate struct {
	Version     int       `json:"version"`
	Request     string    `json:"request"`
	Tenant      string    `json:"tenant"`
	SubjectHash string    `json:"subject_hash"`
	Outcome     string    `json:"outcome"`
	DryRun      bool      `json:"dry_run,omitempty"`
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	IssuedAt    time.Time `json:"issued_at"`
	// Found is everything linked to the subject when the request ran.
	Found Found `json:"found"`
	// Shredded reports the crypto-shredding of the subject's vault key.
	Shredded Shredded `json:"shredded"`
	// Deleted counts what was physically deleted.
	Deleted Deleted `json:"deleted"`
	// Restriction is set when a retention duty turned the request into a
	// restriction.
	Restriction *Restriction `json:"restriction,omitempty"`
	// Verified counts what remains readable after the request (zero for
	// everything deleted).
	Verified Verified `json:"verified"`
	// Steps say, in order, what was (or, on a dry run, would be) done and
	// why.
	Steps []Step `json:"steps"`
}

// Found counts what is linked to the subject.
type Found struct {
	// Tokens are the vault tokens attributed to the subject.
	Tokens int `json:"tokens"`
	// MessagesSent are archived messages the subject sent.
	MessagesSent int `json:"messages_sent"`
	// MessagesLinked are other senders' messages linked to the subject
	// (participant, mentioned); their tokens point at the subject's key.
	MessagesLinked int `json:"messages_linked"`
	// Verdicts are verdicts about the subject's messages.
	Verdicts uint64 `json:"verdicts"`
	// StreamMessages are the MESSAGES stream entries of their messages.
	StreamMessages int `json:"stream_messages"`
	// StreamVerdicts are the VERDICTS stream entries about them.
	StreamVerdicts int `json:"stream_verdicts"`
}

// Shredded reports the vault part of an erasure.
type Shredded struct {
	SubjectKey bool `json:"subject_key"`
	Tokens     int  `json:"tokens"`
}

// Deleted counts physical deletions.
type Deleted struct {
	Messages       uint64 `json:"messages"`
	Verdicts       uint64 `json:"verdicts"`
	StreamMessages int    `json:"stream_messages"`
	StreamVerdicts int    `json:"stream_verdicts"`
}

// Restriction records why and until when data is kept.
type Restriction struct {
	// Basis is the legal ground (GDPR Art. 17(3)(b) and the policy).
	Basis string `json:"basis"`
	// Classes are the policy classes that keep data.
	Classes []string `json:"classes"`
	// Messages are the retained messages.
	Messages int `json:"messages"`
	// DeleteAfter is when the last duty expires and the retention run
	// completes the erasure.
	DeleteAfter time.Time `json:"delete_after"`
}

// Verified counts what remains after the request.
type Verified struct {
	Messages       uint64 `json:"messages"`
	Verdicts       uint64 `json:"verdicts"`
	StreamMessages int    `json:"stream_messages"`
	StreamVerdicts int    `json:"stream_verdicts"`
}

// Step is one action of the request.
type Step struct {
	Action string `json:"action"`
	Why    string `json:"why"`
}

// JSON renders the certificate as indented JSON with a final newline.
func (c *Certificate) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render certificate: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseCertificate decodes a certificate rendered by [Certificate.JSON].
func ParseCertificate(b []byte) (*Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return &c, nil
}

// WriteText renders the certificate for people.
func (c *Certificate) WriteText(w io.Writer) error {
	var b strings.Builder
	title := "ERASURE CERTIFICATE"
	if c.DryRun {
		title = "ERASURE PLAN (dry run: nothing was changed)"
	}
	fmt.Fprintf(&b, "%s\n%s\n\n", title, strings.Repeat("=", len(title)))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Request:\t%s\n", c.Request)
	fmt.Fprintf(tw, "Tenant:\t%s\n", c.Tenant)
	fmt.Fprintf(tw, "Data subject:\t%s (keyed hash)\n", c.SubjectHash)
	fmt.Fprintf(tw, "Outcome:\t%s\n", strings.ToUpper(c.Outcome))
	fmt.Fprintf(tw, "Requested by:\t%s\n", c.RequestedBy)
	fmt.Fprintf(tw, "Reason:\t%s\n", c.Reason)
	fmt.Fprintf(tw, "Issued:\t%s\n", c.IssuedAt.UTC().Format(time.RFC3339))
	_ = tw.Flush()

	b.WriteString("\nFound\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  vault tokens\t%d\n", c.Found.Tokens)
	fmt.Fprintf(tw, "  messages sent\t%d\n", c.Found.MessagesSent)
	fmt.Fprintf(tw, "  other messages linked\t%d\n", c.Found.MessagesLinked)
	fmt.Fprintf(tw, "  verdicts\t%d\n", c.Found.Verdicts)
	fmt.Fprintf(tw, "  stream messages\t%d\n", c.Found.StreamMessages)
	fmt.Fprintf(tw, "  stream verdicts\t%d\n", c.Found.StreamVerdicts)
	_ = tw.Flush()

	if c.Restriction != nil {
		b.WriteString("\nRestricted\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  basis\t%s\n", c.Restriction.Basis)
		fmt.Fprintf(tw, "  policy classes\t%s\n", strings.Join(c.Restriction.Classes, ", "))
		fmt.Fprintf(tw, "  messages retained\t%d\n", c.Restriction.Messages)
		fmt.Fprintf(tw, "  deletion after\t%s\n", c.Restriction.DeleteAfter.UTC().Format(time.RFC3339))
		_ = tw.Flush()
	}

	if c.DryRun {
		b.WriteString("\nTo be deleted\n")
	} else {
		b.WriteString("\nDeleted\n")
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  subject key shredded\t%s\n", yesNo(c.Shredded.SubjectKey))
	fmt.Fprintf(tw, "  tokens made unreadable\t%d\n", c.Shredded.Tokens)
	fmt.Fprintf(tw, "  messages (ClickHouse)\t%d\n", c.Deleted.Messages)
	fmt.Fprintf(tw, "  verdicts (ClickHouse)\t%d\n", c.Deleted.Verdicts)
	fmt.Fprintf(tw, "  stream messages (MESSAGES)\t%d\n", c.Deleted.StreamMessages)
	fmt.Fprintf(tw, "  stream verdicts (VERDICTS)\t%d\n", c.Deleted.StreamVerdicts)
	_ = tw.Flush()

	if !c.DryRun {
		b.WriteString("\nVerified afterwards\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  messages still readable\t%d\n", c.Verified.Messages)
		fmt.Fprintf(tw, "  verdicts still readable\t%d\n", c.Verified.Verdicts)
		fmt.Fprintf(tw, "  stream messages still stored\t%d\n", c.Verified.StreamMessages)
		fmt.Fprintf(tw, "  stream verdicts still stored\t%d\n", c.Verified.StreamVerdicts)
		_ = tw.Flush()
	}

	if c.DryRun {
		b.WriteString("\nPlan\n")
	} else {
		b.WriteString("\nSteps\n")
	}
	for i, s := range c.Steps {
		fmt.Fprintf(&b, "  %d. %s\n     why: %s\n", i+1, s.Action, s.Why)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
