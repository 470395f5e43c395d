import CairnBase
import Crypto
import Foundation

extension RestoreOperation {
    /// A delta restore's question before fetching a bundle: is everything it would lay out already on disk as the
    /// restored backup has it? Then the bundle is not fetched at all.
    ///
    /// Only whole files with a recorded SHA-256 count (the `files` method records one per file; bundles of older
    /// backups and of the `stream` method have none and are always fetched); a bundle with links, changed-block
    /// entries of a file still needed, or long-name headers is always fetched. A file counts as on disk when it is
    /// a regular file of the entry's size whose SHA-256 is the recorded one and the entry is the file's final
    /// content (no newer backup of the chain changed it, and its final size is the entry's). Of the newest backup,
    /// every directory must exist too. Nothing is written here; a bundle that passes marks its files complete.
    struct DeltaBundleCheck {
        let root: String
        let archive: String
        let files: ChainFiles
        let newest: Bool
        let tally: DeltaTally

        /// True when the bundle need not be fetched (its files are then counted as complete).
        func unchanged(_ contents: BackupManifest.BundleContents) throws -> Bool {
            guard contents.others == 0 else { return false }
            if newest {
                for d in contents.directories where !isDirectory(root + "/" + d) { return false }
            }
            var complete: [String] = []
            for f in contents.files {
                try Interruption.check()
                let key = files.manifestPath(archive: archive, path: f.path)
                switch files.standing(key) {
                case .notInFinal where newest: return false  // the newest backup's files are all in its list
                case .notInFinal, .complete: continue  // laid out by nothing, or by a newer backup already
                case .partial: return false
                case .untouched:
                    guard f.blocks != true, let sha = f.sha256, files.final.files[key]?.size == f.size,
                        try onDisk(root + "/" + stripped(f.path), size: f.size, sha256: sha)
                    else { return false }
                    complete.append(key)
                }
            }
            files.markComplete(complete)
            if newest {
                for d in contents.directories { tally.directory(files.manifestPath(archive: archive, path: d)) }
            }
            return true
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

        /// A regular file (not a link) of `size` bytes whose SHA-256 is `sha256`.
        private func onDisk(_ path: String, size: Int64, sha256: String) throws -> Bool {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int64(st.st_size) == size else {
                return false
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            var hash = SHA256()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            var total: Int64 = 0
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { return false }
                if n == 0 { break }
                hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                total += Int64(n)
            }
            tally.compared(bytes: total)
            return total == size && Hex.encode(Array(hash.finalize())) == sha256
        }
    }
}
