import Foundation
import PerfgateCore
import PerfgateStore
import Testing

@testable import PerfgateServer

@Suite struct ServeSettingsTests {
    @Test func defaultsAreTheDocumentedOnes() throws {
        let resolved = try ServeSettings.resolve([])
        #expect(resolved.configuration.host == "127.0.0.1")
        #expect(resolved.configuration.port == 9095)
        #expect(resolved.configuration.databasePath == "data/perfgate.sqlite")
        #expect(resolved.configuration.retentionMinutes == 1500)
        #expect(resolved.configuration.stageShareWindowMinutes == 5)
        #expect(resolved.configuration.layouts == .seed)
    }

    /// Every setting of the table is a flag, in both spellings, and nothing else is.
    @Test func theCommandLineTakesEverySettingOfTheTableAndRefusesTheRest() throws {
        for setting in ServeSettings.all {
            #expect(try ServeSettings.Flags(["--\(setting.name)", "x"]).values == [setting.name: "x"])
            #expect(try ServeSettings.Flags(["--\(setting.name)=--x=y"]).values == [setting.name: "--x=y"])
        }
        let flags = try ServeSettings.Flags(["--buckets", "a=1", "--config=/etc/p.json", "--buckets=b=2", "--port", "1", "--port", "2"])
        #expect(flags.buckets == ["a=1", "b=2"] && flags.config == "/etc/p.json" && flags.values == ["port": "2"])
        for (arguments, message) in [
            (["--bogus", "1"], "unknown option '--bogus'"), (["--port"], "missing value for '--port'"),
            (["--port", "--host", "h"], "missing value for '--port'"), (["9095"], "unexpected argument '9095'"), (["--"], "unexpected argument '--'"),
        ] {
            #expect(throws: ConfigurationError.self) { try ServeSettings.Flags(arguments) }
            do { _ = try ServeSettings.Flags(arguments) } catch { #expect(error.message.hasPrefix(message), "\(arguments)") }
        }
        let help = ServeSettings.helpText
        for setting in ServeSettings.all { #expect(help.contains("--\(setting.name) <value>") && help.contains(setting.environmentName)) }
    }

    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheFile() throws {
        let file = try ServeSettings.Layer.file(
            Array(#"{"port": 7000, "db": "/tmp/file.sqlite", "retention": "2d", "buckets": {"backend_ttfb_seconds": [0.2, 0.4]}}"#.utf8),
            path: "perfgate.json"
        )
        let environment = ServeSettings.Layer.environment([
            "PERFGATE_PORT": "8000", "PERFGATE_DB": "/tmp/env.sqlite",
            "PERFGATE_BUCKETS": "frontend_processing_seconds=0.001,0.002;streaming_duration_seconds=1,2",
        ])
        let flags = ServeSettings.Layer.flags(["port": "9000", "durability": "normal"], buckets: ["streaming_duration_seconds=5"])
        let resolved = try ServeSettings.resolve([file, environment, flags])
        #expect(resolved.configuration.port == 9000)
        #expect(resolved.configuration.databasePath == "/tmp/env.sqlite")
        #expect(resolved.configuration.retentionMinutes == 2880)
        #expect(resolved.configuration.durability == .normal)
        #expect(resolved.configuration.layouts[.backendTTFB].description == "0.2,0.4")
        #expect(resolved.configuration.layouts[.frontendProcessing].description == "0.001,0.002")
        #expect(resolved.configuration.layouts[.streamingDuration].description == "5")
        #expect(resolved.configuration.layouts[.requestStageDuration] == BucketLayout.default(for: .requestStageDuration))
    }

    @Test(arguments: [
        (["port": "99999"], "--port: must be a whole number from 0 to 65535 (got 99999)"),
        (["retention": "90s"], "--retention: must be whole minutes"),
        (["retention": "1h"], "--retention: must be at least 2h (got 1h)"),
        (["series-ttl": "1m"], "--series-ttl: must be at least 5m"),
        (["idempotency-ttl": "31d"], "--idempotency-ttl: must be 1m to 30d (got 31d)"),
        (["max-body-size": "512"], "--max-body-size: must be at least 1KiB (got 512)"),
        (["max-body-size": "2MiB", "max-inflated-body-size": "1MiB"], "the inflated body limit must be at least the body limit"),
        (["tls-key": "k.pem"], "give --tls-certificate and --tls-key together"),
        (["durability": "maybe"], "--durability: must be full or normal"),
        (["max-body-size": "lots"], "--max-body-size: must be a size in bytes"),
        (["log-level": "loud"], "--log-level: must be one of"),
    ])
    func explainsABadFlag(flags: [String: String], words: String) {
        #expect {
            _ = try ServeSettings.resolve([.flags(flags, buckets: [])])
        } throws: { error in
            "\(error)".contains(words)
        }
    }

    @Test func namesTheSourceOfABadValue() {
        #expect {
            _ = try ServeSettings.resolve([.environment(["PERFGATE_BUCKETS": "stage_percentage=1"])])
        } throws: { "\($0)".contains("PERFGATE_BUCKETS: unknown histogram stage_percentage") }
        #expect {
            _ = try ServeSettings.resolve([try .file(Array(#"{"prot": 1}"#.utf8), path: "p.json")])
        } throws: { "\($0)".contains("unknown setting prot in p.json") }
        #expect {
            _ = try ServeSettings.resolve([try .file(Array(#"{"buckets": {"backend_ttfb_seconds": [2, 1]}}"#.utf8), path: "p.json")])
        } throws: { "\($0)".contains("buckets in p.json: backend_ttfb_seconds bounds must increase strictly") }
        #expect(throws: ConfigurationError.self) { _ = try ServeSettings.Layer.file(Array("{".utf8), path: "p.json") }
    }

    /// The README's table of settings shows each default as the table declares it.
    @Test func theReadmeShowsEachSettingWithItsDeclaredDefault() throws {
        let readme = try String(contentsOfFile: #filePath.components(separatedBy: "/Tests/")[0] + "/README.md", encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `--") }
        for setting in ServeSettings.all {
            let row = rows.first { $0.split(separator: "|").first?.contains("`--\(setting.name)`") == true }
            let cells = row?.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            #expect(cells.count >= 3, "no README row for --\(setting.name)")
            guard cells.count >= 3 else { continue }
            // The first word of the README's default, against the declared default's.
            let shown = cells[2].split(whereSeparator: { " (".contains($0) }).first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
            let declared = setting.defaultText.split(separator: ":").first.map(String.init)
            #expect(shown == declared, "--\(setting.name): README says \(cells[2]), the table \(setting.defaultText)")
            #expect(cells[1].contains(setting.environmentName) || cells[1].contains("…"), "--\(setting.name)")
        }
    }

    @Test func readsByteSizes() throws {
        #expect(try ServeSettings.byteSize("8MiB") == 8 * 1024 * 1024)
        #expect(try ServeSettings.byteSize("512KiB") == 512 * 1024)
        #expect(try ServeSettings.byteSize("1000") == 1000)
        #expect(throws: ConfigurationError.self) { _ = try ServeSettings.byteSize("-1") }
    }
}
