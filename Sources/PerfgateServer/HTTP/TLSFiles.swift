import Foundation
import HummingbirdTLS
import NIOSSL

/// The certificate chain and private key perfgate serves HTTPS with, read from PEM files.
enum TLSFiles {
    /// A server TLS configuration from the two files, checked now so that a missing file, a
    /// file of the wrong kind or a key that does not match the certificate stops start-up with
    /// a message naming the file, rather than failing each handshake later.
    static func serverConfiguration(certificate certificatePath: String, key keyPath: String) throws(ConfigurationError) -> TLSConfiguration {
        for (path, flag) in [(certificatePath, "--tls-certificate"), (keyPath, "--tls-key")] where !FileManager.default.isReadableFile(atPath: path) {
            throw ConfigurationError("\(flag) \(path): no readable file there")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ConfigurationError("--tls-certificate \(certificatePath): not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw ConfigurationError("--tls-certificate \(certificatePath): holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ConfigurationError("--tls-key \(keyPath): not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // TLS 1.0 and 1.1 are deprecated (RFC 8996).
        configuration.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError("--tls-key \(keyPath) does not belong to the certificate in \(certificatePath) (\(error))")
        }
        return configuration
    }
}
