// Package pii finds personal data in chat messages and replaces it with
// deterministic tokens before anything is stored: it is the step between
// ingest and the MESSAGES stream (ingest → pii → bus → evaluator → warehouse).
//
// Three parts work together:
//
//   - Detectors ([Detector]) scan text once, left to right, and only look
//     closer where a cheap byte cue fires: '@' for e-mail addresses, digit
//     runs for cards (Luhn + IIN), phone numbers (validated with
//     github.com/nyaruka/phonenumbers), US SSNs, IBANs (mod-97), IPv4,
//     keyword-anchored account/policy/medical-record numbers and dates of
//     birth, street addresses; ':' for IPv6; capitalised words for names from
//     the conversation's [Directory] and after honorifics (Mr, Ms, Dr…).
//   - The [Tokenizer] replaces each finding with a typed token such as
//     ⟦EMAIL:7f3a9c1e2b4d5a6f⟧ whose id is a keyed HMAC-SHA256 of the tenant's
//     token key, the kind and the normalised value: the same value is the same
//     token in every message of a tenant. [FindTokens] recognises tokens;
//     the tokenizer never tokenizes a token again.
//   - The [Vault] keeps the original values in a JetStream KV bucket,
//     encrypted with AES-256-GCM under a per-data-subject key that is itself
//     wrapped by the tenant's key-encryption key from a [KeyProvider].
//     [Vault.Detokenize] needs a reason and writes an audit event;
//     [Vault.Shred] destroys a subject's key (crypto-shredding) through a
//     [SecureDeleter] that overwrites the bytes on disk; [Vault.Restrict]
//     blocks reads without destroying anything (GDPR Art. 18).
//
// # Attribution policy
//
// Values found in a message's text are attributed to the sender, except
// names that matched a participant of the [Directory]: those are that
// participant's data and are attributed to the participant only, so that a
// sender's erasure does not destroy a colleague's name in every message.
// Names found after an honorific (not in the directory) go to the sender.
// Display names are attributed to their participant. A value written by
// several senders is linked to each of them and stored once per subject,
// each copy under that subject's key.
//
// # Erasure policy
//
// A value is readable only while none of its linked subjects is shredded or
// restricted: tokens are per value, so a value cannot stay readable in one
// message and not in another, and erasure errs on the side of the person
// (a shared e-mail address dies with either subject). Shredding a subject
// writes a tombstone (no key material), overwrites on disk every stored copy
// of that subject's tokens (also copies held for other subjects) and then
// its wrapped key. Values attributed to a shredded subject are still
// tokenized afterwards — the same token, so old and new messages stay
// linked — but are never stored again, so replaying or re-ingesting old
// messages cannot bring the person back.
//
// Nothing in this package logs or returns detected values in errors: errors
// and logs carry kinds, counts, token ids and hashed subject ids only.
package pii
