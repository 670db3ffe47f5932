import Layers
import TensorCore

func parameter(_ values: [Float], gradient: [Float], name: String = "p") -> Parameter {
    let p = Parameter(name: name, value: try! Tensor(shape: [values.count], values: values))
    p.gradient = try! Tensor(shape: [gradient.count], values: gradient)
    return p
}

func setGradient(_ p: Parameter, _ g: [Float]) {
    p.gradient = try! Tensor(shape: [g.count], values: g)
}
