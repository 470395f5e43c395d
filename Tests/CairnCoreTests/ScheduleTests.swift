import CairnBase
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// Cron expressions, the schedule planner and the repository lock, with injected times.
@Suite struct CronExpressionTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let newYork = TimeZone(identifier: "America/New_York")!

    static func date(_ s: String, _ tz: TimeZone = utc) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = tz
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: s)!
    }

    static func local(_ d: Date?, _ tz: TimeZone = utc) -> String {
        guard let d else { return "nil" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = tz
        f.dateFormat = "yyyy-MM-dd HH:mm EEE"
        return f.string(from: d)
    }

    func next(_ expr: String, after s: String, _ tz: TimeZone = utc) throws -> String {
        Self.local(try CronExpression(expr).next(after: Self.date(s, tz), in: tz), tz)
    }

    @Test func fieldsRangesStepsListsAndNames() throws {
        #expect(try next("*/15 * * * *", after: "2026-11-25 10:07") == "2026-11-25 10:15 Wed")
        #expect(try next("0 9-17/4 * * *", after: "2026-11-25 10:07") == "2026-11-25 13:00 Wed")
        #expect(try next("5,35 1 * * *", after: "2026-11-25 01:05") == "2026-11-25 01:35 Wed")
        #expect(try next("0 0 * JAN,jul *", after: "2026-11-25 00:00") == "2027-01-01 00:00 Fri")
        #expect(try next("30 2 * * sun", after: "2026-11-25 00:00") == "2026-11-29 02:30 Sun")
        #expect(try next("0 3 * * 7", after: "2026-11-25 00:00") == "2026-11-29 03:00 Sun")
        #expect(try next("0 4 * * MON-FRI", after: "2026-11-27 05:00") == "2026-11-30 04:00 Mon")
        #expect(try next("10-20/5 * * * *", after: "2026-11-25 10:20") == "2026-11-25 11:10 Wed")
        #expect(try next("@hourly", after: "2026-11-25 10:07") == "2026-11-25 11:00 Wed")
        #expect(try next("@daily", after: "2026-11-25 10:07") == "2026-11-26 00:00 Thu")
        #expect(try next("@weekly", after: "2026-11-25 10:07") == "2026-11-29 00:00 Sun")
        #expect(try next("@monthly", after: "2026-11-25 10:07") == "2026-12-01 00:00 Tue")
        #expect(try next("@yearly", after: "2026-11-25 10:07") == "2027-01-01 00:00 Fri")
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // Vixie cron: the 13th, or any Friday.
        #expect(try next("0 0 13 * FRI", after: "2026-11-25 00:00") == "2026-11-27 00:00 Fri")
        #expect(try next("0 0 13 * FRI", after: "2026-11-28 00:00") == "2026-12-04 00:00 Fri")
        #expect(try next("0 0 13 * *", after: "2026-11-28 00:00") == "2026-12-13 00:00 Sun")
    }

    @Test func monthEndsAndLeapYears() throws {
        #expect(try next("0 0 31 * *", after: "2026-11-25 00:00") == "2026-12-31 00:00 Thu")
        #expect(try next("0 0 31 * *", after: "2026-12-31 00:00") == "2027-01-31 00:00 Sun")
        #expect(try next("0 0 29 2 *", after: "2026-03-01 00:00") == "2028-02-29 00:00 Tue")
        #expect(try next("59 23 28-31 * *", after: "2027-02-28 23:59") == "2027-03-28 23:59 Sun")
        #expect(try CronExpression("0 0 30 2 *").next(after: Self.date("2026-01-01 00:00"), in: Self.utc) == nil)
    }

    @Test func daylightSavingGapsFireOnceAtTheEndOfTheGap() throws {
        // Europe/Berlin jumps from 02:00 to 03:00 on 2026-03-29: 02:30 does not exist that day.
        #expect(try next("30 2 * * *", after: "2026-03-28 03:00", Self.berlin) == "2026-03-29 03:00 Sun")
        #expect(try next("30 2 * * *", after: "2026-03-29 03:00", Self.berlin) == "2026-03-30 02:30 Mon")
        // Every 15 minutes through the gap: 01:45, then 03:00 (02:00…02:45 collapse into the jump), 03:15.
        let e = try CronExpression("*/15 * * * *")
        let times = e.fireTimes(
            after: Self.date("2026-03-29 01:30", Self.berlin), through: Self.date("2026-03-29 03:20", Self.berlin),
            in: Self.berlin)
        #expect(
            times.map { Self.local($0, Self.berlin) } == [
                "2026-03-29 01:45 Sun", "2026-03-29 03:00 Sun", "2026-03-29 03:15 Sun"
            ])
        // The UTC instants are 15 minutes apart around the jump, never duplicated.
        #expect(Set(times).count == times.count)
    }

    @Test func daylightSavingRepeatsFireOnce() throws {
        // America/New_York sets the clock back from 02:00 to 01:00 on 2026-11-01: 01:30 happens twice, runs once.
        let e = try CronExpression("30 1 * * *")
        let start = Self.date("2026-10-31 12:00", Self.newYork)
        let times = e.fireTimes(after: start, through: start.addingTimeInterval(3 * 86400), in: Self.newYork)
        #expect(
            times.map { Self.local($0, Self.newYork) } == [
                "2026-11-01 01:30 Sun", "2026-11-02 01:30 Mon", "2026-11-03 01:30 Tue"
            ])
        // Hourly on that day: 25 hours of wall time, one run per distinct local hour.
        let hourly = try CronExpression("0 * * * *")
        let day = hourly.fireTimes(
            after: Self.date("2026-11-01 00:30", Self.newYork), through: Self.date("2026-11-01 23:30", Self.newYork),
            in: Self.newYork)
        #expect(day.count == 23)
    }

    @Test(arguments: [
        "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
        "5-1 * * * *", "* * * FOO *", "@sometimes", "1,,2 * * * *", "a b c d e"
    ])
    func badExpressionsAreExplained(expr: String) {
        let e = #expect(throws: CronExpression.ParseError.self) { try CronExpression(expr) }
        #expect(e?.description.isEmpty == false)
    }
}

@Suite struct SchedulePlannerTests {
    static func policy(_ missed: SchedulePolicy.MissedRuns = .runOnce, jitter: Double = 0) throws -> SchedulePolicy {
        SchedulePolicy(jobs: [
            .init(name: "backup-full", cron: try CronExpression("0 1 * * *"), jitter: jitter, missed: missed),
            .init(name: "expire", cron: try CronExpression("*/30 * * * *"))
        ])
    }

    @Test func dueNowAndNextRuns() throws {
        let now = CronExpressionTests.date("2026-11-25 01:00")
        let states = SchedulePlanner.plan(
            try Self.policy(),
            lastConsidered: [
                "backup-full": CronExpressionTests.date("2026-11-24 01:00"),
                "expire": CronExpressionTests.date("2026-11-25 00:30")
            ], now: now)
        let backup = states.first { $0.job == "backup-full" }!
        #expect(backup.due == now && backup.missed.isEmpty)
        #expect(backup.next == CronExpressionTests.date("2026-11-26 01:00"))
        #expect(states.first { $0.job == "expire" }!.due == now)
    }

    @Test func missedRunsAreRunOnceOrSkipped() throws {
        // The daemon was down from Nov 20 until Nov 25 00:10: five nightly backups were missed.
        let last = ["backup-full": CronExpressionTests.date("2026-11-20 01:00")]
        let now = CronExpressionTests.date("2026-11-25 00:10")
        let once = SchedulePlanner.plan(try Self.policy(.runOnce), lastConsidered: last, now: now).first {
            $0.job == "backup-full"
        }!
        #expect(once.due == CronExpressionTests.date("2026-11-24 01:00"))
        #expect(once.missed.count == 3)
        let skip = SchedulePlanner.plan(try Self.policy(.skip), lastConsidered: last, now: now).first {
            $0.job == "backup-full"
        }!
        #expect(skip.due == nil)
        #expect(skip.missed.count == 4)
        // A job never run before starts now: nothing missed, nothing due.
        let fresh = SchedulePlanner.plan(try Self.policy(), lastConsidered: [:], now: now).first {
            $0.job == "backup-full"
        }!
        #expect(fresh.due == nil && fresh.missed.isEmpty)
    }

    @Test func jitterDelaysRunsReproducibly() throws {
        let p = try Self.policy(jitter: 600)
        let job = p.jobs[0]
        let fire = CronExpressionTests.date("2026-11-25 01:00")
        let j = SchedulePlanner.jitter(job, fire)
        #expect(j > 0 && j < 600)
        #expect(j == SchedulePlanner.jitter(job, fire))
        let last = ["backup-full": CronExpressionTests.date("2026-11-24 01:00")]
        #expect(SchedulePlanner.plan(p, lastConsidered: last, now: fire.addingTimeInterval(j - 1)).first!.due == nil)
        #expect(SchedulePlanner.plan(p, lastConsidered: last, now: fire.addingTimeInterval(j + 1)).first!.due == fire)
    }
}

@Suite struct RepositoryLockTests {
    @Test func oneHolderAtATime() throws {
        let repo = MemoryRepository()
        // Sub-millisecond digits, which JSON does not keep: the holder must still recognise its own lock.
        let clock = ManualClock(Date(timeIntervalSince1970: 1_790_000_000.123456))
        let a = try RepositoryLock.acquire("backup-full", repo: repo, ttl: 600, clock: clock)
        let e = #expect(throws: CairnError.self) {
            try RepositoryLock.acquire("backup-full", repo: repo, ttl: 600, clock: clock)
        }
        #expect(e?.code == .repoLocked)
        #expect(e?.message.contains(ProcessInfo.processInfo.hostName) == true)
        // Another job is independent.
        let other = try RepositoryLock.acquire("expire", repo: repo, ttl: 600, clock: clock)
        a.release()
        let b = try RepositoryLock.acquire("backup-full", repo: repo, ttl: 600, clock: clock)
        b.release()
        other.release()
        #expect(try repo.list(prefix: "locks/").isEmpty)
    }

    @Test func expiredAndDeadHoldersAreTakenOver() throws {
        let repo = MemoryRepository()
        let clock = ManualClock(Date(timeIntervalSince1970: 1_790_000_000))
        // A lock from another host that expired.
        let stale = RepositoryLock.Holder(
            job: "drill", host: "elsewhere", pid: 1, acquired: clock.now(), expires: clock.now().addingTimeInterval(60))
        try repo.put(RepositoryLock.key("drill"), try SealedDocument.seal(stale))
        #expect(throws: CairnError.self) { try RepositoryLock.acquire("drill", repo: repo, ttl: 600, clock: clock) }
        clock.advance(61)
        let l = try RepositoryLock.acquire("drill", repo: repo, ttl: 600, clock: clock)
        #expect(l.holder.host == ProcessInfo.processInfo.hostName)
        l.release()
        // A lock of this host whose process is gone.
        let dead = RepositoryLock.Holder(
            job: "verify", host: ProcessInfo.processInfo.hostName, pid: 999_999, acquired: clock.now(),
            expires: clock.now().addingTimeInterval(3600))
        try repo.put(RepositoryLock.key("verify"), try SealedDocument.seal(dead))
        let v = try RepositoryLock.acquire("verify", repo: repo, ttl: 600, clock: clock)
        // Releasing never removes someone else's lock.
        try repo.put(RepositoryLock.key("verify"), try SealedDocument.seal(dead), options: .overwrite)
        v.release()
        #expect(try repo.head(RepositoryLock.key("verify")) != nil)
    }

    /// A store whose conditional PUT is not atomic: a simultaneous writer's PUT also "succeeds" and wins. The lock
    /// notices on reading back after the settle delay, so only one of the two goes ahead.
    @Test func aLostRaceOnANonAtomicStoreIsDetected() throws {
        final class RacingClock: WallClock, @unchecked Sendable {
            let repo: MemoryRepository
            init(_ repo: MemoryRepository) { self.repo = repo }
            func now() -> Date { Date(timeIntervalSince1970: 1_790_000_000) }
            func sleep(seconds: Double) {
                let winner = RepositoryLock.Holder(
                    job: "backup-full", host: "other-host", pid: 42, acquired: now(),
                    expires: now().addingTimeInterval(600))
                _ = try? repo.put(
                    RepositoryLock.key("backup-full"), try! SealedDocument.seal(winner), options: .overwrite)
            }
        }
        let repo = MemoryRepository()
        let e = #expect(throws: CairnError.self) {
            try RepositoryLock.acquire("backup-full", repo: repo, ttl: 600, clock: RacingClock(repo), settle: 1)
        }
        #expect(e?.code == .repoLocked)
        #expect(e?.message.contains("other-host") == true)
        // The winner's lock is left alone.
        #expect(try repo.head(RepositoryLock.key("backup-full")) != nil)
    }

    /// The wait before reading the lock back is for stores whose create-only writes may not be atomic (S3); the
    /// local folder's hard link and the in-memory driver refuse a second writer by themselves, so a lock there
    /// costs no second.
    @Test func onlyStoresThatMayNotBeAtomicWaitBeforeReadingBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-lock-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let local = LocalRepository(root: dir)
        let s3 = S3Repository(
            settings: S3Settings(
                endpoint: URL(string: "https://s3.example.com")!, bucket: "b", prefix: "p", region: "eu-west-1",
                credentials: AWSCredentials(accessKeyId: "AKIDSECRETLESS", secretAccessKey: "very-secret")))
        #expect(RepositoryLock.settleSeconds(local) == 0)
        #expect(RepositoryLock.settleSeconds(MemoryRepository()) == 0)
        #expect(RepositoryLock.settleSeconds(s3) == 1)
        let clock = ManualClock(Date(timeIntervalSince1970: 1_790_000_000))
        let lock = try RepositoryLock.acquire("backup-full", repo: local, ttl: 600, clock: clock)
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_000), "no settle on the local folder")
        lock.release()
        let waited = try RepositoryLock.acquire(
            "backup-full", repo: MemoryRepository(), ttl: 600, clock: clock, settle: 1)
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_001))
        waited.release()
    }

    /// A lock placed without confirming (a backup confirms it before its commit): the settle time overlaps the
    /// job's work, and a lost race is still found when it is confirmed.
    @Test func aLockConfirmedLaterWaitsOnlyWhatIsLeftAndStillFindsALostRace() throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_790_000_000))
        let repo = MemoryRepository()
        let lock = try RepositoryLock.acquire(
            "backup-full", repo: repo, ttl: 600, clock: clock, settle: 1, confirm: false)
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_000), "placed, not waited for")
        clock.advance(0.25)
        try lock.confirm()
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_001), "the rest of the settle time")
        clock.advance(5)
        try lock.confirm()
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_006), "confirmed once")
        lock.release()

        let late = try RepositoryLock.acquire(
            "backup-full", repo: repo, ttl: 600, clock: clock, settle: 1, confirm: false)
        clock.advance(5)  // the job's work took longer than the settle time: no wait
        let winner = RepositoryLock.Holder(
            job: "backup-full", host: "other-host", pid: 42, acquired: clock.now(),
            expires: clock.now().addingTimeInterval(600))
        _ = try repo.put(RepositoryLock.key("backup-full"), try SealedDocument.seal(winner), options: .overwrite)
        let e = #expect(throws: CairnError.self) { try late.confirm() }
        #expect(e?.code == .repoLocked)
        #expect(e?.message.contains("other-host") == true)
        #expect(clock.now() == Date(timeIntervalSince1970: 1_790_000_011))
        late.release()
        #expect(try RepositoryLock.current("backup-full", repo: repo)?.host == "other-host", "the winner's lock stays")
    }
}
