import Foundation
import NIOSSL
import PostgresNIO

/// A PostgreSQL database named by a `postgres://` or `postgresql://` URL, as libpq reads one:
/// `postgres://user:password@host:port/dbname?sslmode=require&sslrootcert=ca.pem`.
///
/// The password may also come from `PGPASSWORD`, so that it need not appear in a command line.
/// `description` never shows it.
package struct PostgresLocation: Sendable, CustomStringConvertible {
    /// The host name or address.
    package var host: String
    /// The port.
    package var port: Int
    /// The user perfgate logs in as.
    package var user: String
    /// The password, if any.
    var password: String?
    /// The database.
    package var database: String
    /// TLS to the database, by libpq's `sslmode`.
    package var sslMode: SSLMode
    /// A file of CA certificates to verify the server with (`sslrootcert`); the system's otherwise.
    package var rootCertificatePath: String?

    /// libpq's TLS modes.
    package enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// Whether `text` names a PostgreSQL database rather than a SQLite file.
    package static func isURL(_ text: String) -> Bool {
        let lowered = text.lowercased()
        return lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://")
    }

    /// Reads a URL; the error says which part is wrong.
    package init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PostgresLocationError) {
        guard Self.isURL(text), let components = URLComponents(string: text) else {
            throw PostgresLocationError("is not a postgres:// URL (postgres://user@host:port/dbname)")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw PostgresLocationError("has port \(port), outside 1-65535") }
        user = components.user?.removingPercentEncoding ?? environment["PGUSER"] ?? "postgres"
        password = components.password?.removingPercentEncoding ?? environment["PGPASSWORD"]
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 } ?? user
        sslMode = .prefer
        rootCertificatePath = nil
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(SSLMode.init(rawValue:)) else {
                    throw PostgresLocationError(
                        "has sslmode=\(item.value ?? ""); use one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                sslMode = mode
            case "sslrootcert":
                rootCertificatePath = item.value
            case "application_name", "connect_timeout":
                continue
            default:
                throw PostgresLocationError("has parameter \(item.name), which perfgate does not read (it reads sslmode and sslrootcert)")
            }
        }
    }

    /// The URL without its password.
    package var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)\(password == nil ? "" : ":***")@\(shownHost):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
    }

    /// The client configuration: TLS as `sslmode` asks, a bounded pool, and a statement timeout
    /// so that no query holds the writer for ever.
    func clientConfiguration(maximumConnections: Int) throws -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: try tls()
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 1
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", "perfgate"), ("statement_timeout", "30s")]
        return configuration
    }

    private func tls() throws -> PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let rootCertificatePath {
            tls.trustRoots = .file(rootCertificatePath)
        }
        switch sslMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            // As libpq: encryption when the server offers it, with no check of who it is.
            tls.certificateVerification = .none
            return .prefer(tls)
        case .require:
            tls.certificateVerification = .none
            return .require(tls)
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
            return .require(tls)
        case .verifyFull:
            tls.certificateVerification = .fullVerification
            return .require(tls)
        }
    }
}

/// What is wrong with a `postgres://` URL.
package struct PostgresLocationError: Error, CustomStringConvertible, Sendable {
    /// What the URL has wrong, as the end of "the URL …".
    package var description: String

    init(_ description: String) {
        self.description = description
    }
}
