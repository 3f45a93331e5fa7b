import XCTest
import Autograd
import TensorCore
import TestSupport

final class PoolGradTests: XCTestCase {
    func testAvgPoolForward() throws {
        // 1..16 in a 4x4 plane; 2x2 windows average to the centre values below.
        let x = Tensor((1...16).map(Float.init), shape: [1, 1, 4, 4])
        XCTAssertEqual(try x.avgPool2d(kernel: 2).scalars, [3.5, 5.5, 11.5, 13.5])
        XCTAssertEqual(try x.avgPool2d(kernel: 3, stride: 1).scalars, [6, 7, 10, 11])
        XCTAssertEqual(try x.avgPool2d(kernel: 2, stride: 3).scalars, [3.5])  // floor mode: one window
        let y = try randn([2, 3, 7, 5]).avgPool2d(kernel: 2)
        XCTAssertEqual(y.shape, [2, 3, 3, 2])
        XCTAssertEqual(try randn([3, 6, 6]).avgPool2d(kernel: 3).shape, [3, 2, 2])
    }

    func testAvgPoolGradients() throws {
        try gradCheck("avgPool k2", [randn([2, 3, 6, 6])]) { try $0[0].avgPool2d(kernel: 2) }
        try gradCheck("avgPool k2 odd", [randn([2, 2, 7, 5])]) { try $0[0].avgPool2d(kernel: 2) }
        try gradCheck("avgPool k3 s1 (overlap)", [randn([1, 2, 5, 6])]) { try $0[0].avgPool2d(kernel: 3, stride: 1) }
        try gradCheck("avgPool k2 s3 (gaps)", [randn([1, 2, 8, 7])]) { try $0[0].avgPool2d(kernel: 2, stride: 3) }
        try gradCheck("avgPool rank 3", [randn([3, 4, 4])]) { try $0[0].avgPool2d(kernel: 2) }
    }

    func testUpsampleForward() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [1, 1, 2, 3])
        let y = try x.upsampleNearest2d(scale: 2)
        XCTAssertEqual(y.shape, [1, 1, 4, 6])
        XCTAssertEqual(y.scalars, [1, 1, 2, 2, 3, 3,
                                   1, 1, 2, 2, 3, 3,
                                   4, 4, 5, 5, 6, 6,
                                   4, 4, 5, 5, 6, 6])
        XCTAssertEqual(try x.upsampleNearest2d(scale: 1).scalars, x.scalars)
        XCTAssertEqual(try randn([3, 2, 2]).upsampleNearest2d(scale: 3).shape, [3, 6, 6])
    }

    func testUpsampleGradients() throws {
        try gradCheck("upsample x2", [randn([2, 3, 4, 5])]) { try $0[0].upsampleNearest2d(scale: 2) }
        try gradCheck("upsample x3", [randn([1, 2, 3, 3])]) { try $0[0].upsampleNearest2d(scale: 3) }
        try gradCheck("upsample x1", [randn([1, 2, 3, 3])]) { try $0[0].upsampleNearest2d(scale: 1) }
        // avgPool(kernel s) undoes upsample(scale s): the composite is the identity.
        let x = randn([2, 2, 3, 4])
        let back = try x.upsampleNearest2d(scale: 2).avgPool2d(kernel: 2)
        for (a, b) in zip(back.scalars, x.scalars) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testErrorsNameOpAndShapes() {
        XCTAssertThrowsError(try randn([1, 1, 3, 3]).avgPool2d(kernel: 4)) { e in
            XCTAssertEqual("\(e)", "avgPool2d: kernel 4x4 is larger than the input [1, 1, 3, 3]")
        }
        XCTAssertThrowsError(try randn([3, 3]).avgPool2d(kernel: 2)) { e in
            XCTAssertEqual("\(e)", "avgPool2d: input must have shape [N, C, H, W] or [C, H, W], got [3, 3]")
        }
        XCTAssertThrowsError(try randn([1, 1, 4, 4]).avgPool2d(kernel: 2, stride: 0)) { e in
            XCTAssertEqual("\(e)", "avgPool2d: kernel and stride must be >= 1, got kernel 2, stride 0")
        }
        XCTAssertThrowsError(try randn([1, 1, 2, 2]).upsampleNearest2d(scale: 0)) { e in
            XCTAssertEqual("\(e)", "upsampleNearest2d: scale must be >= 1, got 0 for input [1, 1, 2, 2]")
        }
        XCTAssertThrowsError(try randn([2, 2, 2, 2, 2]).upsampleNearest2d(scale: 2)) { e in
            XCTAssertEqual("\(e)", "upsampleNearest2d: input must have shape [N, C, H, W] or [C, H, W], got [2, 2, 2, 2, 2]")
        }
    }
}
