package messaging

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/kombu-go/kombu/internal/optmap"
)

// buildTLS returns the TLS configuration for an endpoint: nil when TLS is
// off, otherwise base (cloned) or a new configuration, adjusted by the
// URL's ssl_* parameters:
//
//	ssl_cert_reqs       CERT_NONE/none: no verification; CERT_REQUIRED,
//	                    CERT_OPTIONAL, required, optional: verify (default)
//	ssl_check_hostname  false: verify the chain but not the host name
//	ssl_ca_certs        PEM file of the CAs to trust
//	ssl_certfile        client certificate (PEM), with ssl_keyfile
//	ssl_keyfile         client key (PEM)
//	ssl_server_hostname the name to verify and send as SNI
//
// The keys may also be given without the "ssl_" prefix (Kombu's ssl dict
// for py-amqp uses cert_reqs, ca_certs ...).
//
// Unlike Kombu, which turns "rediss://" without options into an unverified
// connection (with a warning), verification stays on unless
// ssl_cert_reqs=none says otherwise.
func buildTLS(ep Endpoint, scheme Scheme, base *tls.Config) (*tls.Config, error) {
	if !ep.TLS && !scheme.TLS && base == nil {
		return nil, nil
	}
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" && ep.Hostname != "" && !strings.HasPrefix(ep.Hostname, "/") {
		cfg.ServerName = ep.Hostname
	}
	dict := make(map[string]any, len(ep.SSL))
	for k, v := range ep.SSL {
		dict[k] = v
	}
	r := optmap.New("messaging", map[string]any{"ssl": dict})
	t := r.TLS()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if err := t.Apply("messaging", cfg, true, true); err != nil {
		return nil, err
	}
	return cfg, nil
}
