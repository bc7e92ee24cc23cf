package check

import (
	"context"
	"fmt"

	"github.com/miekg/dns"
)

// DNS asks the backend, over UDP, for Query of type QueryType and passes
// on a NOERROR answer with at least one record in the answer section.
type DNS struct {
	name  string
	qtype uint16
}

// NewDNS validates the query; the type defaults to A.
func NewDNS(query, qtype string) (*DNS, error) {
	if qtype == "" {
		qtype = "A"
	}
	t, ok := dns.StringToType[qtype]
	if !ok {
		return nil, fmt.Errorf("dns check: unknown query type %q", qtype)
	}
	if query == "" {
		return nil, fmt.Errorf("dns check: empty query")
	}
	if _, ok := dns.IsDomainName(query); !ok {
		return nil, fmt.Errorf("dns check: bad query name %q", query)
	}
	return &DNS{name: dns.Fqdn(query), qtype: t}, nil
}

// Check sends one query.
func (d *DNS) Check(ctx context.Context, t Target) (err error) {
	defer func() { err = Classify(err) }()
	m := new(dns.Msg)
	m.SetQuestion(d.name, d.qtype)
	c := &dns.Client{Net: "udp", UDPSize: dns.DefaultMsgSize}
	r, _, err := c.ExchangeContext(ctx, m, t.Addr.String())
	if err != nil {
		return fmt.Errorf("query: %w", ctxErr(ctx, err))
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	if len(r.Answer) == 0 {
		return fmt.Errorf("no answer for %s %s", d.name, dns.TypeToString[d.qtype])
	}
	return nil
}
