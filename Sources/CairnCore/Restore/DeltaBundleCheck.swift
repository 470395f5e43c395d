import CairnBase
import Crypto
import Foundation

extension RestoreOperation {
    /// A delta restore's question before fetching a bundle: is everything it would lay out already on disk as the
    /// restored backup has it? Then the bundle is not fetched at all. Or do only some frames of its large files
    /// differ (``FileFrames``)? Then only those are fetched, by range.
    ///
    /// Only whole files with a recorded digest or frames count (the `files` method records them; bundles of older
    /// backups and of the `stream` method have none and are always fetched); a bundle with links, changed-block
    /// entries of a file still needed, or long-name headers is always fetched. A file counts as on disk when it is
    /// a regular file of the entry's size whose digest is the recorded one and the entry is the file's final
    /// content (no newer backup of the chain changed it, and its final size is the entry's); a framed file's
    /// frames are compared one by one, and the file on disk may be shorter or longer. Of the newest backup, every
    /// directory must exist too. Nothing is written here; a bundle that passes marks its files complete (a file
    /// whose frames are repaired, once they are).
    struct DeltaBundleCheck {
        let root: String
        let archive: String
        let files: ChainFiles
        let newest: Bool
        let tally: DeltaTally

        /// What to do with one bundle.
        enum Plan {
            /// Nothing: everything it holds is on disk.
            case skip
            /// Fetch it whole and lay it out, comparing block by block.
            case fetch
            /// Fetch only these frames; everything else it holds is on disk.
            case repair([FrameRepair])
        }

        func plan(_ contents: BackupManifest.BundleContents) throws -> Plan {
            guard contents.others == 0 else { return .fetch }
            if newest {
                for d in contents.directories where !isDirectory(root + "/" + d) { return .fetch }
            }
            var complete: [String] = []
            var framed: [(key: String, path: String, size: Int64, frames: FileFrames)] = []
            for f in contents.files {
                try Interruption.check()
                let key = files.manifestPath(archive: archive, path: f.path)
                switch files.standing(key) {
                case .notInFinal where newest: return .fetch  // the newest backup's files are all in its list
                case .notInFinal, .complete: continue  // laid out by nothing, or by a newer backup already
                case .partial: return .fetch
                case .untouched:
                    guard f.blocks != true, files.final.files[key]?.size == f.size else { return .fetch }
                    if let frames = f.frames, frames.isConsistent(fileSize: f.size) {
                        framed.append((key, root + "/" + stripped(f.path), f.size, frames))  // the costly ones last
                        continue
                    }
                    guard let digest = f.xxh128.map(Digest.xxh128) ?? f.sha256.map(Digest.sha256),
                        try onDisk(root + "/" + stripped(f.path), size: f.size, digest: digest)
                    else { return .fetch }
                    complete.append(key)
                }
            }
            var repairs: [FrameRepair] = []
            for f in framed {
                guard let differing = try FrameRepair.differing(f.path, size: f.size, frames: f.frames, tally: tally)
                else { return .fetch }
                if differing.isEmpty {
                    complete.append(f.key)
                } else {
                    repairs.append(
                        FrameRepair(key: f.key, path: f.path, size: f.size, frames: f.frames, differing: differing))
                }
            }
            files.markComplete(complete)
            if newest {
                for d in contents.directories { tally.directory(files.manifestPath(archive: archive, path: d)) }
            }
            return repairs.isEmpty ? .skip : .repair(repairs)
        }

        private func stripped(_ path: String) -> String {
            var p = path
            while p.hasPrefix("./") { p.removeFirst(2) }
            return p
        }

        private func isDirectory(_ path: String) -> Bool {
            var st = stat()
            return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }

        /// A whole file's recorded digest: XXH3-128 (``ContentHash``), or SHA-256 in backups made before it.
        enum Digest {
            case xxh128(String)
            case sha256(String)
        }

        /// A regular file (not a link) of `size` bytes with the recorded `digest`.
        private func onDisk(_ path: String, size: Int64, digest: Digest) throws -> Bool {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int64(st.st_size) == size else {
                return false
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            var sha = SHA256()
            let xxh = try ContentHash()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            var total: Int64 = 0
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { return false }
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                if case .sha256 = digest { sha.update(bufferPointer: chunk) } else { xxh.update(chunk) }
                total += Int64(n)
            }
            tally.compared(bytes: total)
            switch digest {
            case .xxh128(let recorded): return total == size && xxh.finish() == recorded
            case .sha256(let recorded): return total == size && Hex.encode(Array(sha.finalize())) == recorded
            }
        }
    }
}
