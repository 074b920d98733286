import Foundation

/// Reads small text files named in the settings.
enum TextFile {
    /// The file's text as UTF-8, or an error naming the file.
    static func read(_ path: String) throws(ConfigurationError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError("\(path) is not UTF-8 text")
        }
        return text
    }
}
