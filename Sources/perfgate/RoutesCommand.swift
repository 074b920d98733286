import ArgumentParser
import Foundation
import PerfgateCore
import PerfgateServer

/// `perfgate routes`: the routes perfgate serves and who may call each, from the table the server routes by.
struct RoutesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes",
        abstract: "Print every route perfgate serves and the token role it needs.",
        discussion: "Useful for reverse-proxy rules and audits. Every other method on these paths is answered 405 with Allow; other paths 404."
    )

    @Flag(help: "Print a JSON array of {method, path, access, summary}") var json = false

    func run() {
        if json {
            var writer = JSONWriter()
            writer.array { w in
                for route in Route.allCases {
                    w.object { w in
                        w.member("method", route.methodName)
                        w.member("path", route.path)
                        w.member("access", route.access.name)
                        w.member("summary", route.summary)
                    }
                }
            }
            print(String(decoding: writer.bytes, as: UTF8.self))
            return
        }
        let width = Route.allCases.map { $0.name.count }.max() ?? 0
        for route in Route.allCases {
            let name = route.name.padding(toLength: width + 2, withPad: " ", startingAt: 0)
            let access = route.access.name.padding(toLength: 8, withPad: " ", startingAt: 0)
            print("\(name)\(access)\(route.summary)")
        }
    }
}
