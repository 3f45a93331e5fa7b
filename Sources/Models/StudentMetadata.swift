/// Metadata a distilled student carries about its pairs, so that its distillation error can be
/// measured from the checkpoint alone (the flow that made them, with the same solver and
/// guidance). Written by the distillation stage, read by evaluation.
public enum StudentKey {
    /// Path of the flow that made the pairs, and its SHA-256 then.
    public static let pairsTeacher = "pairs_teacher"
    public static let pairsTeacherSHA256 = "pairs_teacher_sha256"
    /// The pairs' solver settings as JSON (Flow's `SolverSettings.json`).
    public static let pairsSolver = "pairs_solver"
    public static let pairsGuidance = "pairs_guidance"
    /// Euler steps the student is meant to be sampled with.
    public static let studentSteps = "student_steps"
}
