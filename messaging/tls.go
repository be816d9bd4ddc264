package messaging

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
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
	get := func(k string) (string, bool) {
		if v, ok := ep.SSL["ssl_"+k]; ok {
			return v, true
		}
		v, ok := ep.SSL[k]
		return v, ok
	}
	if cfg.ServerName == "" && ep.Hostname != "" && !strings.HasPrefix(ep.Hostname, "/") {
		cfg.ServerName = ep.Hostname
	}
	if v, ok := get("server_hostname"); ok {
		cfg.ServerName = v
	}
	if v, ok := get("cert_reqs"); ok {
		switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(v), "CERT_")) {
		case "none":
			cfg.InsecureSkipVerify = true
		case "required", "optional":
		default:
			return nil, fmt.Errorf("%w: ssl_cert_reqs=%q (choose from CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE)", ErrInvalidURL, v)
		}
	}
	if v, ok := get("ca_certs"); ok {
		pem, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("messaging: ssl_ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("messaging: ssl_ca_certs %s: no PEM certificate found", v)
		}
		cfg.RootCAs = pool
	}
	certFile, hasCert := get("certfile")
	keyFile, hasKey := get("keyfile")
	if hasCert || hasKey {
		if !hasKey {
			keyFile = certFile // Python's load_cert_chain: the key may sit in the cert file
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("messaging: ssl_certfile/ssl_keyfile: %w", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if v, ok := get("check_hostname"); ok && strings.ToLower(v) == "false" && !cfg.InsecureSkipVerify {
		// Verify the chain against the roots, but not the name.
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("messaging: tls: no peer certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return cfg, nil
}
