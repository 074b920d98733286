/// What a bearer token may do. `admin` may do everything.
package enum AccessRole: String, CaseIterable, Sendable {
    /// Post events.
    case ingest
    /// Read `/metrics`, `/v1/trends` and the status page.
    case read
    /// Everything, including deletes.
    case admin
}

/// The bearer tokens perfgate accepts, per role. With none at all, perfgate runs open.
package struct AccessTokens: Sendable, Equatable {
    private var tokens: [AccessRole: [[UInt8]]] = [:]

    /// No tokens: every endpoint is open.
    package init() {}

    /// True when no token is configured, so nothing is checked.
    package var isOpen: Bool { tokens.values.allSatisfy(\.isEmpty) }

    /// How many tokens each role has.
    package func count(of role: AccessRole) -> Int { tokens[role]?.count ?? 0 }

    /// Adds a token for `role`; it must be 16 to 512 visible ASCII characters.
    package mutating func add(_ token: String, for role: AccessRole) throws(ConfigurationError) {
        let bytes = Array(token.utf8)
        guard (16...512).contains(bytes.count) else {
            throw ConfigurationError("\(role.rawValue) tokens must be 16 to 512 characters long (got \(bytes.count)); make one with: openssl rand -hex 32")
        }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigurationError("\(role.rawValue) tokens must be visible ASCII characters, without spaces")
        }
        tokens[role, default: []].append(bytes)
    }

    /// Replaces `role`'s tokens with `list`.
    package mutating func replace(_ role: AccessRole, with list: [String]) throws(ConfigurationError) {
        tokens[role] = []
        for token in list { try add(token, for: role) }
    }

    /// The roles `presented` holds. Every configured token is compared, each in time that does
    /// not depend on where the bytes differ, so timing does not tell an attacker how close a guess was.
    package func roles(of presented: some StringProtocol) -> Set<AccessRole> {
        let candidate = Array(presented.utf8)
        var roles: Set<AccessRole> = []
        for role in AccessRole.allCases {
            var matched = false
            for token in tokens[role] ?? [] where Self.constantTimeEqual(token, candidate) {
                matched = true
            }
            if matched { roles.insert(role) }
        }
        return roles
    }

    /// Compares every byte position up to the longer length; differences, including the
    /// lengths', are OR-ed together rather than returned early.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt64(a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let left = index < a.count ? a[index] : 0
            let right = index < b.count ? b[index] : 0
            difference |= UInt64(left ^ right)
        }
        return difference == 0
    }

    /// Reads a tokens file: one `role token` pair per line; blank lines and `#` comments skipped.
    package static func parseFile(_ text: String, path: String) throws(ConfigurationError) -> AccessTokens {
        var tokens = AccessTokens()
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(rawLine).trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2, let role = AccessRole(rawValue: String(parts[0])) else {
                throw ConfigurationError("\(path), line \(offset + 1): expected '<role> <token>' with role ingest, read or admin")
            }
            do {
                try tokens.add(String(parts[1]), for: role)
            } catch {
                throw ConfigurationError("\(path), line \(offset + 1): \(error)")
            }
        }
        return tokens
    }
}
