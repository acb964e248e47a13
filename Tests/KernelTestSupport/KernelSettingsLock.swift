import Foundation

/// The kernels' instruction-set path and thread count are process-wide, and `swift test`
/// links every test target into one process whose suites run in parallel. A test that
/// changes either setting holds this lock for as long as the setting must stay put, so a
/// test of another target cannot switch it halfway (`.serialized` orders one target's
/// suites only).
public enum KernelSettingsLock {
    private static let lock = NSRecursiveLock()

    public static func holding<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
