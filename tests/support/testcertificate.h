// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// A self-signed certificate for TLS tests, made with the openssl command line tool.

#include <QSslConfiguration>
#include <QString>

#include <optional>

namespace llmproxy::test {

// A server configuration (no client certificate asked) with a new self-signed EC certificate
// for `subjectAltName` ("IP:127.0.0.1", "DNS:localhost") and common name `commonName`.
// nullopt when openssl could not make it (tests skip then). The certificate or key may still
// be null if openssl wrote something unreadable: callers check localCertificate()/privateKey().
std::optional<QSslConfiguration> selfSignedServerConfiguration(const QString &commonName,
                                                               const QString &subjectAltName);

} // namespace llmproxy::test
