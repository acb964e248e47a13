import ArgumentParser
import Foundation
import LoRACore

/// Where error messages go: standard error, or on a job's ranks other than 0 (whose
/// ordinary output is silenced) the standard error they started with, prefixed by the rank.
nonisolated(unsafe) var errorOutput = FileHandle.standardError
nonisolated(unsafe) var errorPrefix = ""

/// Runs a command in the job this process was launched in: one process, or the ranks of
/// `mpirun`/`srun`. Rank 0 prints the progress and results of the whole job; the other
/// ranks' standard output and error are silenced. An error on any rank is printed with its
/// rank and ends the whole job (MPI_Abort): the other ranks may be waiting for this one.
func inLaunchedJob<T>(_ body: (ProcessGroup) throws -> T) throws -> T {
    let group = try reportingErrors { try ProcessGroup.launched() }
    guard group.size > 1 else { return try body(group) }
    errorPrefix = "rank \(group.rank) of \(group.size): "
    if !group.isLeader {
        errorOutput = FileHandle(fileDescriptor: dup(STDERR_FILENO), closeOnDealloc: true)
        let null = open("/dev/null", O_WRONLY)
        dup2(null, STDOUT_FILENO)
        dup2(null, STDERR_FILENO)
        close(null)
    }
    do {
        return try body(group)
    } catch let code as ExitCode where code == ExitCode(130) {
        throw code // every rank stopped after the same step
    } catch {
        if !(error is ExitCode) { errorOutput.write(Data("error: \(errorPrefix)\(error)\n".utf8)) }
        group.abort(code: 1)
    }
}
