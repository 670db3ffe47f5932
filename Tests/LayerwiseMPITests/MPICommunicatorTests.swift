import LayerwiseMPI
import Training
import XCTest

/// Single-process checks of the MPI product; multi-rank behaviour (agreement with one
/// process, determinism, resume, a dying rank) is tested by Scripts/mpi_test.sh under mpirun.
final class MPICommunicatorTests: XCTestCase {
    func testWithoutALauncherTheEnvironmentGivesOneProcessAndNeverStartsMPI() throws {
        try XCTSkipIf(MPICommunicator.isLaunchedByMPI, "running under an MPI launcher")
        let communicator = try MPICommunicator.fromEnvironment()
        XCTAssertTrue(communicator is SingleProcessCommunicator)
        XCTAssertEqual(communicator.rank, 0)
        XCTAssertEqual(communicator.size, 1)
    }

    func testANonPositiveTimeoutIsATypedError() {
        XCTAssertThrowsError(try MPICommunicator(timeout: 0)) { error in
            guard case CommunicatorError.invalidArgument(_, let operation, let reason) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(operation, "MPICommunicator")
            XCTAssertTrue(reason.contains("0"))
        }
    }
}
