import CairnBase
import Foundation
import Testing

@testable import CairnCLI

/// `repositories:` in cairn.yaml: names, order, and what is refused.
@Suite struct SeveralRepositoriesConfigTests {
    let env = ["AWS_ENDPOINT_URL": "https://elsewhere.example.com", "AWS_REGION": "ap-south-1"]

    @Test func theListKeepsItsOrderAndEachRepositoryItsOwnEndpoint() throws {
        let c = try ConfigLoader(environment: env).load(
            text: """
                repositories:
                  - name: local
                    type: local
                    path: /var/lib/cairn/repo
                  - name: offsite
                    bucket: backups
                    endpoint: https://s3.example.com
                    region: eu-west-1
                    encryption:
                      key_env: CAIRN_KEY
                archive:
                  max_backlog: 256MiB
                """, file: "cairn.yaml")
        #expect(c.repositories.map(\.name) == ["local", "offsite"])
        guard case .s3(let s3) = c.repositories[1].kind else { Issue.record("not s3"); return }
        #expect(s3.endpoint.absoluteString == "https://s3.example.com" && s3.region == "eu-west-1")
        #expect(c.repositories[1].encryption == .environment("CAIRN_KEY") && c.encryption == nil)
        #expect(c.archive.maxBacklog == 256 << 20)
        // One repository, as before: named default, and the environment still moves it.
        let one = try ConfigLoader(environment: env).load(
            text: "repository:\n  bucket: b-1\n  endpoint: https://s3.example.com\n", file: "cairn.yaml")
        #expect(one.repositories.map(\.name) == ["default"])
        guard case .s3(let moved) = one.repository else { Issue.record("not s3"); return }
        #expect(moved.endpoint.absoluteString == "https://elsewhere.example.com")
        #expect(one.archive.maxBacklog == 1 << 30)
    }

    @Test func namesMustBeGivenUniqueAndPlain() {
        let e = #expect(throws: ConfigError.self) {
            try ConfigLoader(environment: [:]).load(
                text: """
                    repositories:
                      - name: a
                        path: /r1
                      - name: a
                        path: /r2
                      - path: /r3
                      - name: "b c"
                        path: /r4
                    """, file: "cairn.yaml")
        }
        let text = e?.problems.map(\.description).joined(separator: "\n") ?? ""
        #expect(text.contains("the name \"a\" is used twice"))
        #expect(text.contains("repositories.3.name is required"))
        #expect(text.contains("name \"b c\" may hold only letters"))
    }

    @Test func oneOrSeveralNotBoth() {
        let e = #expect(throws: ConfigError.self) {
            try ConfigLoader(environment: [:]).load(
                text: "repository:\n  path: /r\nrepositories:\n  - name: a\n    path: /r2\n", file: "cairn.yaml")
        }
        #expect(e?.problems.contains { $0.message.contains("not both") } == true)
    }
}
