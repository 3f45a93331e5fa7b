import NN
import TripletStore

/// What every tool's `--version` prints: the toolkit's version and the versions of the file
/// formats it writes, which decide whether two installs can share checkpoints and pair files.
public enum ReflowVersion {
    public static let toolkit = "0.6.0"
    public static var string: String {
        "\(toolkit) (triplet format \(TripletFormat.version), training-state format \(TrainingState.formatVersion))"
    }
}
