import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// What `cairn check` proves, one part at a time, with the reads `cairn doctor` gathers its facts with: the CLI
/// only prints each part as ok or failed.
public enum SetupCheck {
    /// The cluster's identity, and its WAL settings as doctor reads them.
    public static func cluster(_ c: PGConnection) throws -> (ClusterInfo, DoctorFacts.Settings) {
        (try ClusterInfo.read(c), try DoctorFacts.Settings.read(c))
    }

    /// The repository is reachable and writable (the probe doctor runs too), initialised, and, when the cluster
    /// is known, this cluster's.
    public static func repository(
        _ repo: any Repository, cluster: ClusterInfo?,
        clock: any WallClock = SystemClock()
    ) throws -> (RepositoryProbe.Result, RepositoryInfo) {
        let probe = try RepositoryProbe.run(repo: repo, clock: clock)
        let info = try RepositoryInfo.require(from: repo)
        if let cluster { try info.checkBelongs(to: cluster, repo: repo) }
        return (probe, info)
    }
}
