package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
)

// tlsSettings is the resolved TLS configuration (cloned per dial).
type tlsSettings struct {
	cfg *tls.Config
}

// tlsOptions are Kombu's ssl dict keys.
type tlsOptions struct {
	caCerts, certFile, keyFile, certReqs, serverHostname string
	checkHostname                                        *bool
}

// parseTLSOptions reads ssl, ssl_* and the ssl map's keys. want reports
// whether they ask for TLS (ssl true, or any ssl_* key).
func parseTLSOptions(opts map[string]any) (o tlsOptions, want bool, err error) {
	sslMap, _ := opts["ssl"].(map[string]any)
	if ms, ok := opts["ssl"].(map[string]string); ok {
		sslMap = make(map[string]any, len(ms))
		for k, v := range ms {
			sslMap[k] = v
		}
	}
	get := func(key string) (any, bool) {
		if v, ok := opts["ssl_"+key]; ok {
			return v, true
		}
		if m := sslMap; m != nil {
			if v, ok := m[key]; ok {
				return v, true
			}
			if v, ok := m["ssl_"+key]; ok {
				return v, true
			}
		}
		return nil, false
	}
	if v, ok := opts["ssl"]; ok {
		switch x := v.(type) {
		case map[string]any, map[string]string:
			want = true
		default:
			if want, err = optBool(map[string]any{"ssl": x}, "ssl", false); err != nil {
				return o, false, err
			}
		}
	}
	str := func(key string, dst *string) {
		if v, ok := get(key); ok && v != nil {
			*dst = fmt.Sprint(v)
			want = true
		}
	}
	str("ca_certs", &o.caCerts)
	str("certfile", &o.certFile)
	str("keyfile", &o.keyFile)
	str("cert_reqs", &o.certReqs)
	str("server_hostname", &o.serverHostname)
	if v, ok := get("check_hostname"); ok {
		b, err := optBool(map[string]any{"v": v}, "v", true)
		if err != nil {
			return o, false, fmt.Errorf("%w: ssl_check_hostname=%v", ErrBadOption, v)
		}
		o.checkHostname = &b
		want = true
	}
	return o, want, nil
}

// buildTLS merges the options into a clone of base (or a new config).
func buildTLS(base *tls.Config, o tlsOptions, host string) (*tlsSettings, error) {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.caCerts != "" {
		pem, err := os.ReadFile(o.caCerts)
		if err != nil {
			return nil, fmt.Errorf("amqp: ssl_ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ssl_ca_certs %s holds no PEM certificate", ErrBadOption, o.caCerts)
		}
		cfg.RootCAs = pool
	}
	if o.certFile != "" || o.keyFile != "" {
		key := o.keyFile
		if key == "" {
			key = o.certFile // Python accepts the key inside the cert file
		}
		cert, err := tls.LoadX509KeyPair(o.certFile, key)
		if err != nil {
			return nil, fmt.Errorf("amqp: ssl_certfile/ssl_keyfile: %w", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(o.certReqs), "SSL.")) {
	case "", "CERT_REQUIRED", "REQUIRED", "CERT_OPTIONAL", "OPTIONAL", "2", "1":
		// A client always gets the server's certificate: optional and
		// required verify alike, as in Python.
	case "CERT_NONE", "NONE", "0":
		cfg.InsecureSkipVerify = true
	default:
		return nil, fmt.Errorf("%w: ssl_cert_reqs=%q", ErrBadOption, o.certReqs)
	}
	if o.serverHostname != "" {
		cfg.ServerName = o.serverHostname
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if o.checkHostname != nil && !*o.checkHostname && !cfg.InsecureSkipVerify {
		// Verify the chain but not the name, as Python's check_hostname=False.
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("amqp: TLS peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return &tlsSettings{cfg: cfg}, nil
}

func tlsClient(ctx context.Context, nc net.Conn, s *settings) (net.Conn, error) {
	tc := tls.Client(nc, s.tlsCfg.cfg.Clone())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}
