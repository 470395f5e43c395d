import CairnBase
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An account of this host.
public struct OSUser: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    public var home: String

    public init(name: String, uid: uid_t, gid: gid_t, home: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    /// The account named `name`, nil when there is none.
    public static func named(_ name: String) -> OSUser? {
        lookup { pwd, buf, result in getpwnam_r(name, &pwd, buf.baseAddress!, buf.count, &result) }
    }

    /// The account with user id `uid`, nil when there is none.
    public static func withID(_ uid: uid_t) -> OSUser? {
        lookup { pwd, buf, result in getpwuid_r(uid, &pwd, buf.baseAddress!, buf.count, &result) }
    }

    /// The user id owning `path`, nil when it does not exist.
    public static func owner(of path: String) -> uid_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_uid : nil
    }

    private static func lookup(
        _ call: (inout passwd, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<passwd>?) -> Int32
    ) -> OSUser? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        return buffer.withUnsafeMutableBufferPointer { buf -> OSUser? in
            guard call(&pwd, buf, &result) == 0, result != nil else { return nil }
            return OSUser(
                name: String(cString: pwd.pw_name), uid: pwd.pw_uid, gid: pwd.pw_gid, home: String(cString: pwd.pw_dir))
        }
    }
}

/// PostgreSQL's server programs (initdb, pg_ctl, postgres) refuse to run as root. A command that starts them
/// (`cairn drill`) and was started as root runs as the account that owns the cluster instead.
public enum ServerUser {
    /// True when this process runs as root.
    public static var isRoot: Bool { geteuid() == 0 }

    /// The account to run as instead of root: the owner of `dataDirectory` when it is configured, exists and is
    /// not root's, else the `postgres` account. Throws when there is neither, before any work is done.
    public static func resolve(
        dataDirectory: String?, owner: (String) -> uid_t? = OSUser.owner(of:),
        byID: (uid_t) -> OSUser? = OSUser.withID, byName: (String) -> OSUser? = OSUser.named
    ) throws -> OSUser {
        if let dir = dataDirectory, let uid = owner(dir), uid != 0, let user = byID(uid) { return user }
        if let user = byName("postgres"), user.uid != 0 { return user }
        throw CairnError(
            .configInvalid,
            "cairn runs as root, and PostgreSQL's server programs refuse to: there is no cluster owner to run them as (\(dataDirectory.map { "\($0) is missing or owned by root" } ?? "cluster.data_directory is not set") and there is no postgres account)",
            hint:
                "run cairn as the OS user that owns the cluster (e.g. runuser -u postgres -- cairn ...), or set cluster.data_directory to the cluster's data directory"
        )
    }

    /// Switches this whole process to `user` for good (supplementary groups, group, then user), so that every
    /// file it creates belongs to that user and every program it starts runs as that user.
    public static func become(_ user: OSUser) throws {
        guard initgroups(user.name, user.gid) == 0, setgid(user.gid) == 0, setuid(user.uid) == 0 else {
            throw CairnError(
                .localIO,
                "cannot switch from root to the OS user \(user.name) (uid \(user.uid)): \(String(cString: strerror(errno)))",
                hint: "run cairn as \(user.name) (e.g. runuser -u \(user.name) -- cairn ...)")
        }
        guard getuid() == user.uid, geteuid() == user.uid else {
            throw CairnError(
                .localIO, "switching to the OS user \(user.name) did not take effect",
                hint: "run cairn as \(user.name) (e.g. runuser -u \(user.name) -- cairn ...)")
        }
        setenv("HOME", user.home, 1)
        setenv("USER", user.name, 1)
        setenv("LOGNAME", user.name, 1)
    }
}
