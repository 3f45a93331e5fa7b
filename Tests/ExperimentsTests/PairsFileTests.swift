import XCTest
import Datasets
import Formats
import TripletStore
import Experiments
import ConfigKit
import Evaluation
import Flow
import Generation
import Reporting
import TestSupport
import Training
import Models
import NN
import TensorCore
import Foundation
import Sampling

/// What a Python user sees of our pair files.
final class PairsFileTests: XCTestCase {
    /// The triplet file opens in h5py with the documented schema, and its teacher hash matches
    /// Python's hashlib.
    func testTripletFileOpensInH5py() throws {
        guard runPython("import h5py") else { throw XCTSkip("h5py not available") }
        let dir = tempDir("h5py")
        let p = try Pipeline(config: chainToyConfig(output: dir))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        var r = try p.pairsRequest(teacher: teacher, output: dir + "/pairs.h5")
        r.count = 100; r.solver.steps = 2
        try generatePairs(r)
        let ours = try PairsFile(path: dir + "/pairs.h5")
        let script = """
        import h5py, hashlib, json, numpy as np
        f = h5py.File('\(dir)/pairs.h5', 'r')
        assert set(f.keys()) == {'text', 'noise', 'image', 'checksum'}, list(f.keys())
        assert f['noise'].shape == (100, 2, 1, 1) and f['noise'].dtype == np.float32
        assert f['image'].shape == (100, 2, 1, 1) and f['image'].dtype == np.float32
        assert f['text'].shape == (100,)
        a = f.attrs
        s = lambda k: a[k].decode() if isinstance(a[k], bytes) else a[k]
        assert s('format') == 'reflow-triplets' and s('format_version') == '2', dict(a)
        assert list(a['committed_rows']) == [100, ~100]
        assert s('time_convention').startswith('t=0 noise, t=1 data')
        assert json.loads(s('solver')) == {'name': 'rk4', 'steps': 2} and s('guidance') == '1.5', s('solver')
        assert s('teacher_sha256') == hashlib.sha256(open('\(teacher)', 'rb').read()).hexdigest()
        t = f['text'][3]
        t = t.decode() if isinstance(t, bytes) else t
        assert t == '\(ours.texts[3])', t
        assert abs(float(f['noise'][7, 1, 0, 0]) - (\(ours.noise[15]))) < 1e-6
        assert abs(float(f['image'][9, 0, 0, 0]) - (\(ours.images[18]))) < 1e-6
        """
        XCTAssertTrue(runPython(script), "h5py could not read the file with our schema (see stderr)")
    }
}
